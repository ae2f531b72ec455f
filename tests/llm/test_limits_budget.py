"""Concurrency cap, per-model rate limits and the budget, measured at the mock server."""

from __future__ import annotations

import asyncio

import pytest

from daydreaming_dagster.errors import BudgetExceeded
from daydreaming_dagster.llm import (
    CostLedger,
    GenerationResult,
    LLMConfig,
    RequestLimits,
    Usage,
    build_llm_client,
)
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from daydreaming_dagster.llm.router import EndpointConfig

from .conftest import make_request, model_info


def gather(client, requests):  # noqa: ANN001, ANN201
    """Run ``requests`` concurrently; exceptions are returned, not raised."""

    async def run():  # noqa: ANN202
        try:
            return await asyncio.gather(
                *(client.generate(r) for r in requests), return_exceptions=True
            )
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_global_concurrency_cap_is_honoured() -> None:
    with MockLLMServer(MockConfig(latency_s=0.2)) as server:
        models = {m: model_info(m) for m in ("a", "b")}
        client = build_llm_client(
            models,
            LLMConfig(max_concurrency=4),
            environ={"DAYDREAMING_LLM_BASE_URL": server.base_url},
        )
        requests = [make_request(model_id=("a", "b")[i % 2], replicate=i) for i in range(16)]
        results = gather(client, requests)
        assert all(isinstance(r, GenerationResult) for r in results)
        stats = server.stats()
        assert stats["total"] == 16
        assert stats["max_in_flight"] == 4  # the cap, reached and never exceeded


@pytest.mark.slow
def test_requests_per_minute_spaces_calls_at_the_server() -> None:
    with MockLLMServer(MockConfig()) as server:
        # A named endpoint (no global override): the catalog's per-model rate applies.
        models = {
            "limited": model_info("limited", provider="local", requests_per_minute=120),
            "free": model_info("free", provider="local"),
        }
        config = LLMConfig(endpoints={"local": EndpointConfig(base_url=server.base_url)})
        client = build_llm_client(models, config, environ={})
        requests = [
            make_request(model_id="limited", model="limited/model", replicate=i) for i in range(5)
        ]
        requests += [
            make_request(model_id="free", model="free/model", replicate=i) for i in range(5)
        ]

        async def run() -> list[GenerationResult]:
            try:
                # Warm the client first, so set-up time does not blur the first gap.
                await client.generate(make_request(model_id="free", model="free/model"))
                return await asyncio.gather(*(client.generate(r) for r in requests))
            finally:
                await client.aclose()

        results = asyncio.run(run())
        assert all(isinstance(r, GenerationResult) for r in results)
        log = server.stats()["requests"]
        limited = sorted(r["at"] for r in log if r["model"] == "limited/model")
        gaps = [b - a for a, b in zip(limited, limited[1:], strict=False)]
        assert len(gaps) == 4
        # 60 / 120 rpm = 0.5 s between starts; client-side jitter may move single arrivals.
        assert 1.9 <= limited[-1] - limited[0] <= 2.6, gaps
        assert all(0.35 <= gap <= 0.8 for gap in gaps), gaps
        free = sorted(r["at"] for r in log if r["model"] == "free/model")[1:]
        assert free[-1] - free[0] < 0.3  # other models are not held back


def test_rpm_resolution_order() -> None:
    models = {
        "catalog": model_info("catalog", requests_per_minute=30),
        "both": model_info("both", requests_per_minute=30),
        "plain": model_info("plain"),
        "local": model_info("local", provider="vllm"),
    }
    config = LLMConfig(
        default_requests_per_minute=600,
        provider_requests_per_minute={"vllm": 1000},
        model_requests_per_minute={"both": 10},
    )
    client = build_llm_client(models, config, environ={})
    rpm = client.limits.requests_per_minute
    assert (rpm("catalog"), rpm("both"), rpm("plain"), rpm("local")) == (30, 10, 600, 1000)


def test_budget_stops_new_calls_while_calls_in_flight_finish() -> None:
    with MockLLMServer(MockConfig(latency_s=0.3)) as server:
        models = {"mock": model_info("mock")}
        client = build_llm_client(
            models,
            # Any real call costs more than this: the budget is spent after the first wave.
            LLMConfig(max_cost=1e-9, max_concurrency=2),
            environ={"DAYDREAMING_LLM_BASE_URL": server.base_url},
        )
        requests = [make_request(replicate=i, gen_id=f"d_{i}") for i in range(5)]
        results = gather(client, requests)
        finished = [r for r in results if isinstance(r, GenerationResult)]
        refused = [r for r in results if isinstance(r, BudgetExceeded)]
        # Two started (the cap) before anything was spent; both finish normally.
        assert len(finished) == 2 and len(refused) == 3
        assert all(r.text and r.usage.cost_usd for r in finished)
        assert server.stats()["total"] == 2  # refused calls never reached the server
        assert "max_cost" in str(refused[0]) and "mock" in str(refused[0])
        summary = client.ledger.summary()
        assert summary.total.calls == 2 and summary.refused_calls == 3
        assert summary.total.cost_usd == pytest.approx(sum(r.usage.cost_usd for r in finished))
        # Once spent, a later call is refused at once.
        with pytest.raises(BudgetExceeded):
            asyncio.run(client.generate(make_request(replicate=99)))
        assert server.stats()["total"] == 2


def test_ledger_sums_per_stage_and_total() -> None:
    ledger = CostLedger()
    for stage, cost in (("draft", 0.5), ("draft", 0.25), ("essay", 1.0), ("evaluation", None)):
        ledger.record(
            make_request(stage=stage),
            GenerationResult(
                text="x",
                finish_reason="stop",
                provider="p",
                model="m",
                usage=Usage(prompt_tokens=10, completion_tokens=5, cost_usd=cost),
            ),
        )
    summary = ledger.summary()
    assert summary.total.calls == 4 and summary.total.cost_usd == pytest.approx(1.75)
    assert summary.total.calls_without_cost == 1
    assert summary.by_stage["draft"].cost_usd == pytest.approx(0.75)
    assert summary.by_stage["draft"].calls == 2
    assert summary.by_stage["evaluation"].calls_without_cost == 1
    assert summary.total.prompt_tokens == 40 and summary.total.completion_tokens == 20
    assert summary.as_dict()["by_stage"]["essay"]["cost_usd"] == 1.0
    assert not ledger.exhausted()
    limited = CostLedger(max_cost=0)
    with pytest.raises(BudgetExceeded):
        limited.ensure_can_start(make_request())


def test_limits_work_across_event_loops() -> None:
    limits = RequestLimits(max_concurrency=2, rpm_for=lambda _m: None)

    async def use() -> int:
        peak = 0
        active = 0

        async def one() -> None:
            nonlocal peak, active
            async with limits.slot("m"):
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.01)
                active -= 1

        await asyncio.gather(*(one() for _ in range(6)))
        return peak

    # Contention binds an asyncio.Semaphore to its loop; a shared one would raise
    # RuntimeError in the second asyncio.run.
    assert asyncio.run(use()) == 2
    assert asyncio.run(use()) == 2
    with pytest.raises(ValueError):
        RequestLimits(max_concurrency=0)


def test_catalog_rates_do_not_apply_under_a_base_url_override() -> None:
    """With every model sent to one override endpoint (a local server), the real provider's
    per-model rates from the catalog are not enforced; config-level rates still are."""
    models = {"limited": model_info("limited", requests_per_minute=6)}
    overridden = build_llm_client(models, LLMConfig(), environ={"DAYDREAMING_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    assert overridden._rpm_for("limited") is None
    configured = build_llm_client(
        models, LLMConfig(model_requests_per_minute={"limited": 30}),
        environ={"DAYDREAMING_LLM_BASE_URL": "http://127.0.0.1:9/v1"},
    )
    assert configured._rpm_for("limited") == 30
    plain = build_llm_client(models, LLMConfig(), environ={"OPENROUTER_API_KEY": "k"})
    assert plain._rpm_for("limited") == 6


def test_a_stop_request_keeps_calls_waiting_for_their_rate_token_from_going_out() -> None:
    from daydreaming_dagster.llm.base import CallStopped, request_stop, reset_stop

    with MockLLMServer(MockConfig()) as server:
        models = {"slow": model_info("slow", provider="local", requests_per_minute=60)}  # 1 s apart
        config = LLMConfig(endpoints={"local": EndpointConfig(base_url=server.base_url)})
        client = build_llm_client(models, config, environ={})
        requests = [make_request(model_id="slow", model="slow/model", replicate=i) for i in range(3)]

        async def run() -> list[object]:
            calls = [asyncio.create_task(client.generate(r)) for r in requests]
            await asyncio.sleep(0.5)  # the first call is answered; two wait for their token
            request_stop()
            try:
                return await asyncio.gather(*calls, return_exceptions=True)
            finally:
                await client.aclose()

        try:
            results = asyncio.run(run())
        finally:
            reset_stop()
        assert sum(isinstance(r, GenerationResult) for r in results) == 1
        assert sum(isinstance(r, CallStopped) for r in results) == 2
        assert server.stats()["total"] == 1  # nothing went out after the stop request
