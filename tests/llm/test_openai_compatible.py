"""The OpenAI-compatible provider, driven through the real ``openai`` SDK against the mock
server over loopback: usage and cost, reasoning, truncation, retries and give-ups."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from daydreaming_dagster.errors import ProviderError
from daydreaming_dagster.llm import OpenAICompatibleProvider, RetryPolicy, parse_retry_after
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer, ScriptedResponse
from daydreaming_dagster.llm.offline import synthetic_completion

from .conftest import FAST_RETRY, make_request


def provider_for(
    server: MockLLMServer,
    *,
    openrouter_path: bool = True,
    retry: RetryPolicy = FAST_RETRY,
    timeout_s: float = 10.0,
    **kwargs: object,
) -> OpenAICompatibleProvider:
    base_url = server.openrouter_base_url if openrouter_path else server.base_url
    return OpenAICompatibleProvider(
        name="openrouter",
        base_url=base_url,
        api_key="test-key",
        api_key_env="OPENROUTER_API_KEY",
        retry=retry,
        timeout_s=timeout_s,
        **kwargs,  # type: ignore[arg-type]
    )


def generate(provider: OpenAICompatibleProvider, request) -> object:  # noqa: ANN001
    async def call():  # noqa: ANN202
        try:
            return await provider.generate(request)
        finally:
            await provider.aclose()

    return asyncio.run(call())


def test_success_returns_stage_text_usage_and_reported_cost(mock_server: MockLLMServer) -> None:
    request = make_request(
        "Rate this essay; end with SCORE: N",
        stage="evaluation",
        replicate=3,
        max_tokens=500,
        temperature=0.2,
    )
    result = generate(provider_for(mock_server), request)
    # The stage header makes the server answer exactly what the offline provider would.
    assert result.text == synthetic_completion(request.prompt, "evaluation", request.model, 3)
    assert result.finish_reason == "stop" and not result.truncated
    assert result.provider == "openrouter"
    assert result.model == "mock/model"
    assert result.endpoint == mock_server.openrouter_base_url
    assert result.attempts == 1 and result.retry_wait_s == 0.0
    assert result.response_id and result.response_id.startswith("mock-")
    usage = result.usage
    assert usage.prompt_tokens == len(request.prompt.split())
    assert usage.completion_tokens == len(result.text.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    expected = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert usage.cost_source == "provider"
    sent = mock_server.stats()["requests"][-1]
    assert (sent["max_tokens"], sent["temperature"], sent["stage"]) == (500, 0.2, "evaluation")


def test_cost_from_price_table_when_the_provider_reports_none() -> None:
    with MockLLMServer(MockConfig(report_cost=False)) as server:
        provider = provider_for(server, prices={"mock": (3.0, 15.0)})
        result = generate(provider, make_request())
        usage = result.usage
        assert usage.cost_source == "price_table"
        assert usage.cost_usd == pytest.approx(
            (usage.prompt_tokens * 3.0 + usage.completion_tokens * 15.0) / 1e6
        )
        unknown = generate(provider_for(server), make_request())
        assert unknown.usage.cost_usd is None and unknown.usage.cost_source is None


@pytest.mark.parametrize("openrouter_path", [True, False])
def test_reasoning_is_kept_apart_from_the_answer(
    mock_server: MockLLMServer, openrouter_path: bool
) -> None:
    # The mock sends `reasoning` on /api/v1 (OpenRouter) and `reasoning_content` on /v1 (vLLM).
    result = generate(
        provider_for(mock_server, openrouter_path=openrouter_path),
        make_request(model="deepseek/reasoning-model", stage="essay"),
    )
    assert result.reasoning == "(mock reasoning) Thinking about the essay before answering."
    assert "mock reasoning" not in result.text
    plain = generate(provider_for(mock_server), make_request())
    assert plain.reasoning is None


def test_scripted_reasoning_and_text(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(text="final answer", reasoning="step 1, step 2"))
    result = generate(provider_for(mock_server), make_request())
    assert (result.text, result.reasoning) == ("final answer", "step 1, step 2")


def test_truncation_maps_to_length(mock_server: MockLLMServer) -> None:
    result = generate(provider_for(mock_server), make_request(max_tokens=12))
    assert result.finish_reason == "length" and result.truncated
    assert result.usage.completion_tokens == 12
    with MockLLMServer(MockConfig(truncate_rate=1.0)) as server:
        cut = generate(provider_for(server), make_request(stage="essay"))
        full = synthetic_completion(make_request().prompt, "essay", "mock/model", 1)
        assert cut.truncated and full.startswith(cut.text) and len(cut.text) < len(full)


def test_other_finish_reason_spellings_map_to_length(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(text="cut", finish_reason="max_tokens"))
    assert generate(provider_for(mock_server), make_request()).finish_reason == "length"


def test_429_storm_then_success_honours_retry_after(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(429, retry_after=0.2), times=3)
    # Backoff alone would wait ~10 ms: the measured waits show Retry-After won.
    started = time.perf_counter()
    result = generate(provider_for(mock_server), make_request())
    elapsed = time.perf_counter() - started
    assert result.attempts == 4
    assert 0.6 <= result.retry_wait_s <= 0.6 * 1.1 + 0.05
    assert elapsed >= 0.6
    stats = mock_server.stats()
    assert stats["by_status"] == {"429": 3, "200": 1}
    gaps = [b - a for a, b in zip(stats["arrivals"], stats["arrivals"][1:], strict=False)]
    assert len(gaps) == 3 and all(gap >= 0.2 for gap in gaps)


def test_retry_after_is_capped(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(429, retry_after=30))
    retry = RetryPolicy(max_attempts=2, retry_after_cap_s=0.1)
    result = generate(provider_for(mock_server, retry=retry), make_request())
    assert result.attempts == 2 and result.retry_wait_s < 0.2


def test_500_then_success(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(500), ScriptedResponse(503))
    result = generate(provider_for(mock_server), make_request())
    assert result.attempts == 3
    assert 0 < result.retry_wait_s < 0.5
    assert mock_server.stats()["by_status"] == {"500": 1, "503": 1, "200": 1}


def test_persistent_500_gives_up_after_max_attempts(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(500, error_message="upstream exploded"), times=10)
    with pytest.raises(ProviderError) as info:
        generate(provider_for(mock_server), make_request())
    assert info.value.status == 500 and info.value.retryable
    assert "gave up after 4 attempts" in str(info.value)
    assert "upstream exploded" in str(info.value)
    assert info.value.attempts == 4 and info.value.retry_wait_s > 0  # type: ignore[attr-defined]
    assert mock_server.stats()["total"] == 4


def test_401_fails_at_once_naming_the_key_variable(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(401, error_message="No auth credentials found"), times=5)
    with pytest.raises(ProviderError) as info:
        generate(provider_for(mock_server), make_request())
    message = str(info.value)
    assert info.value.status == 401 and not info.value.retryable
    assert "OPENROUTER_API_KEY" in message and "No auth credentials found" in message
    assert mock_server.stats()["total"] == 1  # no retry
    assert info.value.attempts == 1  # type: ignore[attr-defined]


def test_wrong_key_is_401_from_the_server() -> None:
    with MockLLMServer(MockConfig(api_key="right")) as server:
        with pytest.raises(ProviderError, match="OPENROUTER_API_KEY"):
            generate(provider_for(server), make_request())
        assert server.stats()["by_status"] == {"401": 1}


def test_404_names_the_model_id() -> None:
    with MockLLMServer(MockConfig(known_models=frozenset({"real/model"}))) as server:
        with pytest.raises(ProviderError) as info:
            generate(provider_for(server), make_request(model_id="typo", model="reel/model"))
        message = str(info.value)
        assert info.value.status == 404
        assert "'reel/model'" in message and "'typo'" in message and "llm_models.csv" in message
        assert server.stats()["total"] == 1


@pytest.mark.parametrize("status", [400, 403])
def test_other_client_errors_fail_at_once(mock_server: MockLLMServer, status: int) -> None:
    mock_server.script(ScriptedResponse(status, error_message="nope"), times=3)
    with pytest.raises(ProviderError) as info:
        generate(provider_for(mock_server), make_request(max_tokens=99))
    assert info.value.status == status and "nope" in str(info.value)
    if status == 400:
        assert "max_tokens (99)" in str(info.value)
    assert mock_server.stats()["total"] == 1


def test_timeouts_are_retried_then_fail() -> None:
    with MockLLMServer(MockConfig(latency_s=1.0)) as server:
        provider = provider_for(
            server,
            timeout_s=0.2,
            retry=RetryPolicy(max_attempts=3, backoff_initial_s=0.01, jitter_s=0.0),
        )
        started = time.perf_counter()
        with pytest.raises(ProviderError) as info:
            generate(provider, make_request())
        elapsed = time.perf_counter() - started
        assert "timed out" in str(info.value) and "gave up after 3 attempts" in str(info.value)
        assert info.value.retryable and info.value.status is None
        assert server.stats()["total"] == 3
        assert elapsed < 1.5  # three 0.2 s timeouts, not three 1 s answers


def test_timeout_then_success() -> None:
    with MockLLMServer(MockConfig()) as server:
        server.script(ScriptedResponse(200, latency_s=1.0))
        provider = provider_for(server, timeout_s=0.3)
        result = generate(provider, make_request())
        assert result.attempts == 2 and result.text


def test_connection_refused_is_retried_then_fails() -> None:
    server = MockLLMServer().start()
    url = server.base_url
    server.stop()  # nothing listens on the port any more
    provider = OpenAICompatibleProvider(name="vllm", base_url=url, api_key="x", retry=FAST_RETRY)
    with pytest.raises(ProviderError) as info:
        generate(provider, make_request())
    assert "cannot reach" in str(info.value) and "gave up after 4 attempts" in str(info.value)


def test_error_inside_a_200_body_is_retried(mock_server: MockLLMServer) -> None:
    # OpenRouter reports some upstream failures as HTTP 200 with an error and no choices.
    upstream = {"id": "gen-1", "error": {"code": 502, "message": "upstream died"}}
    mock_server.script(ScriptedResponse(200, body=upstream))
    result = generate(provider_for(mock_server), make_request())
    assert result.attempts == 2 and result.text


def test_non_retryable_error_inside_a_200_body_fails(mock_server: MockLLMServer) -> None:
    refused = {"id": "gen-1", "error": {"code": 400, "message": "context too long"}}
    mock_server.script(ScriptedResponse(200, body=refused), times=3)
    with pytest.raises(ProviderError, match="context too long") as info:
        generate(provider_for(mock_server), make_request())
    assert info.value.status == 400 and mock_server.stats()["total"] == 1


def test_one_provider_serves_several_event_loops(mock_server: MockLLMServer) -> None:
    # Dagster may call asyncio.run several times in one process with the same resource.
    provider = provider_for(mock_server)
    for replicate in (1, 2, 3):
        result = asyncio.run(provider.generate(make_request(replicate=replicate)))
        assert result.text
    assert mock_server.stats()["by_status"] == {"200": 3}


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= parse_retry_after({"retry-after": format_datetime(later, usegmt=True)}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_repr_hides_the_key(mock_server: MockLLMServer) -> None:
    assert "test-key" not in repr(provider_for(mock_server))
