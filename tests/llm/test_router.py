"""Routing by catalog provider: offline, no silent synthetic text without a key, slugs, the base-URL override,
configured endpoints, and errors a person can act on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from daydreaming_dagster.catalog_types import ModelInfo
from daydreaming_dagster.errors import ConfigError, ProviderError
from daydreaming_dagster.llm import (
    SYNTHETIC_MARKER,
    EndpointConfig,
    LLMConfig,
    build_llm_client,
    plan_route,
    synthetic_completion,
)
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer, ScriptedResponse

from .conftest import make_request, model_info


def call(client, request):  # noqa: ANN001, ANN201
    async def run():  # noqa: ANN202
        try:
            return await client.generate(request)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_offline_models_are_served_offline(caplog: pytest.LogCaptureFixture) -> None:
    client = build_llm_client({"offline": model_info("offline", provider="offline")}, environ={})
    with caplog.at_level(logging.WARNING):
        result = call(client, make_request(model_id="offline", model="offline/model"))
    assert result.provider == "offline" and result.requested_provider == "offline"
    assert result.text == synthetic_completion(make_request().prompt, "draft", "offline/model", 1)
    assert not caplog.records  # offline by choice: nothing to warn about
    assert client.ledger.summary().total.calls == 1


def test_missing_key_is_a_config_error_naming_the_variable() -> None:
    client = build_llm_client({"r1": model_info("r1", provider="openrouter")}, environ={})
    with pytest.raises(ConfigError, match="OPENROUTER_API_KEY is not set; export OPENROUTER_API_KEY"):
        call(client, make_request(model_id="r1", model="r1/model"))
    gpt = build_llm_client({"gpt": model_info("gpt", provider="openai")}, environ={})
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        call(gpt, make_request(model_id="gpt"))


def test_offline_opt_in_serves_keyless_models_with_synthetic_text_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = build_llm_client({"r1": model_info("r1", provider="openrouter")},
                              environ={"DAYDREAMING_OFFLINE": "1"})
    with caplog.at_level(logging.WARNING, logger="daydreaming_dagster.llm.router"):
        first = call(client, make_request(model_id="r1", model="r1/model"))
        second = call(client, make_request(model_id="r1", model="r1/model", replicate=2))
    assert first.provider == "offline" and first.requested_provider == "openrouter"
    assert first.text.startswith(SYNTHETIC_MARKER) and second.text != first.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per route, not per call
    assert "OPENROUTER_API_KEY is not set" in warnings[0].getMessage()
    assert "SYNTHETIC" in warnings[0].getMessage()
    route = client.route("r1")
    assert route.served_by == "offline" and route.offline_stand_in and route.route == "openrouter"


def test_maker_named_provider_with_an_openrouter_slug_goes_to_openrouter(mock_server: MockLLMServer) -> None:
    config = LLMConfig(openrouter_base_url=mock_server.openrouter_base_url)
    models = {"gemini_2.5_flash": ModelInfo(id="gemini_2.5_flash", model="google/gemini-2.5-flash",
                                            provider="google")}
    client = build_llm_client(models, config, environ={"OPENROUTER_API_KEY": "sk-test"})
    result = call(client, make_request(model_id="gemini_2.5_flash", model="google/gemini-2.5-flash"))
    assert (result.provider, result.requested_provider) == ("openrouter", "openrouter")
    assert mock_server.stats()["by_path"] == {"/api/v1/chat/completions": 1}
    assert mock_server.stats()["by_model"] == {"google/gemini-2.5-flash": 1}


@pytest.mark.parametrize(
    ("model", "provider", "route", "problem"),
    [
        ("deepseek/deepseek-r1:free", "deepseek", "openrouter", "OPENROUTER_API_KEY is not set"),
        ("anthropic/claude-3.5-sonnet", "anthropic", "openrouter", "OPENROUTER_API_KEY is not set"),
        ("llama3.1:8b", "ollama", "ollama", "provider 'ollama' has no route"),
        ("offline-synthetic", "offline", "offline", None),
    ],
)
def test_plan_route_rules(model: str, provider: str, route: str, problem: str | None) -> None:
    plan = plan_route(ModelInfo(id="m", model=model, provider=provider), LLMConfig(), {})
    assert plan.route == route
    assert (plan.problem is None) if problem is None else (problem in plan.problem)
    assert "m -> " in plan.describe()
    opted_in = plan_route(ModelInfo(id="m", model=model, provider=provider), LLMConfig(offline_fallback=True), {})
    assert opted_in.problem is None and opted_in.served_by == "offline"


def test_unknown_model_id_lists_the_known_ones() -> None:
    client = build_llm_client({"a": model_info("a"), "b": model_info("b")}, environ={})
    with pytest.raises(ConfigError, match="'zzz' is not in llm_models.csv; known ids: a, b"):
        call(client, make_request(model_id="zzz"))


def test_base_url_override_sends_every_non_offline_model_to_it(mock_server: MockLLMServer) -> None:
    models = {
        "r1": model_info("r1", provider="openrouter"),
        "gpt": model_info("gpt", provider="openai"),
        "local": model_info("local", provider="ollama"),
        "off": model_info("off", provider="offline"),
    }
    client = build_llm_client(models, environ={"DAYDREAMING_LLM_BASE_URL": mock_server.base_url})

    async def run():  # noqa: ANN202
        try:
            return await asyncio.gather(
                *(client.generate(make_request(model_id=m, model=f"{m}/model")) for m in models)
            )
        finally:
            await client.aclose()

    results = dict(zip(models, asyncio.run(run()), strict=True))
    for model_id in ("r1", "gpt", "local"):
        assert results[model_id].provider == "endpoint"
        assert results[model_id].endpoint == mock_server.base_url
        assert results[model_id].requested_provider == "endpoint"
    assert results["off"].provider == "offline"
    assert mock_server.stats()["by_model"] == {"r1/model": 1, "gpt/model": 1, "local/model": 1}


def test_openrouter_with_key_uses_its_base_url_and_names_the_key_on_401(
    mock_server: MockLLMServer,
) -> None:
    config = LLMConfig(openrouter_base_url=mock_server.openrouter_base_url, max_attempts=3)
    client = build_llm_client(
        {"r1": model_info("r1")}, config, environ={"OPENROUTER_API_KEY": "sk-test"}
    )
    ok = call(client, make_request(model_id="r1", model="r1/model"))
    assert ok.provider == "openrouter" and ok.usage.cost_source == "provider"
    assert mock_server.stats()["by_path"] == {"/api/v1/chat/completions": 1}
    mock_server.script(ScriptedResponse(401, error_message="No auth credentials found"), times=3)
    with pytest.raises(ProviderError) as info:
        call(client, make_request(model_id="r1", model="r1/model"))
    assert "OPENROUTER_API_KEY" in str(info.value) and info.value.status == 401
    assert mock_server.stats()["total"] == 2  # one success, one 401 without retry


def test_the_key_is_sent_as_bearer_token() -> None:
    with MockLLMServer(MockConfig(api_key="sk-right")) as server:
        config = LLMConfig(openai_base_url=server.base_url)
        good = build_llm_client(
            {"gpt": model_info("gpt", provider="openai")},
            config,
            environ={"OPENAI_API_KEY": "sk-right"},
        )
        assert call(good, make_request(model_id="gpt")).provider == "openai"
        # OpenAI's newer models want max_completion_tokens; the mock reads either.
        assert call(good, make_request(model_id="gpt", max_tokens=7)).truncated
        bad = build_llm_client(
            {"gpt": model_info("gpt", provider="openai")},
            config,
            environ={"OPENAI_API_KEY": "sk-wrong"},
        )
        with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
            call(bad, make_request(model_id="gpt"))


def test_configured_endpoint_by_provider_name(mock_server: MockLLMServer) -> None:
    config = LLMConfig(endpoints={"vllm": EndpointConfig(base_url=mock_server.base_url)})
    client = build_llm_client({"local": model_info("local", provider="vllm")}, config, environ={})
    result = call(client, make_request(model_id="local", model="local/model"))
    assert (result.provider, result.endpoint) == ("vllm", mock_server.base_url)


def test_unknown_provider_without_endpoint_nor_slug_is_a_config_error() -> None:
    client = build_llm_client({"x": ModelInfo(id="x", model="llama", provider="llamacpp")}, environ={})
    with pytest.raises(ConfigError, match="DAYDREAMING_LLM_BASE_URL"):
        call(client, make_request(model_id="x", model="llama"))


def test_config_from_env_and_validation() -> None:
    config = LLMConfig.from_env(
        {"DAYDREAMING_LLM_CONCURRENCY": "8", "DAYDREAMING_LLM_MAX_COST": "2.5"}, timeout_s=30
    )
    assert (config.max_concurrency, config.max_cost, config.timeout_s) == (8, 2.5, 30)
    assert not config.offline_fallback  # synthetic text only when asked for
    opted = LLMConfig.from_env({"DAYDREAMING_OFFLINE": "1", "DAYDREAMING_OPENROUTER_BASE_URL": "http://x/api/v1"})
    assert opted.offline_fallback and opted.openrouter_base_url == "http://x/api/v1"
    with pytest.raises(ConfigError, match="DAYDREAMING_LLM_RPM='fast'"):
        LLMConfig.from_env({"DAYDREAMING_LLM_RPM": "fast"})
    with pytest.raises(ValueError):
        LLMConfig(max_attempts=0)
    with pytest.raises(ValueError):
        LLMConfig(unknown_setting=1)  # type: ignore[call-arg]


def test_only_a_remote_route_imports_the_openai_sdk() -> None:
    """The SDK costs about a second to import; a cohort served offline (the demo) never needs it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from daydreaming_dagster.catalog_types import ModelInfo\n"
        "from daydreaming_dagster.llm.router import build_llm_client\n"
        "client = build_llm_client({'m': ModelInfo(id='m', model='vendor/model', provider=PROVIDER)}, environ=ENV)\n"
        "print(client.route('m').served_by, 'openai' in sys.modules)\n"
    )

    def served(provider: str, environ: dict[str, str]) -> str:
        program = code.replace("PROVIDER", repr(provider)).replace("ENV", repr(environ))
        return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout.strip()

    assert served("offline", {}) == "offline False"
    assert served("openai", {"OPENAI_API_KEY": "test-key"}) == "openai True"
