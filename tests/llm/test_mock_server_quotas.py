"""The mock server as a stand-in for a real provider's timing and quotas: seeded heavy-tailed
latencies logged per request, per-model requests- and tokens-per-minute quotas answering 429
with the wait in Retry-After."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import httpx
import pytest

from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMApp, MockLLMServer, ModelQuota
from daydreaming_dagster.llm.offline import count_tokens


def _draws(config: MockConfig, count: int) -> list[float]:
    app = MockLLMApp(config)
    return [app.draw_latency(f"request {i}") for i in range(count)]


def test_lognormal_latencies_have_the_asked_median_and_p99_and_are_seeded() -> None:
    config = MockConfig(latency_dist="lognormal", latency_median_s=2.0, latency_p99_s=20.0, seed=7)
    draws = _draws(config, 20_000)
    assert statistics.median(draws) == pytest.approx(2.0, rel=0.05)
    assert sorted(draws)[int(0.99 * len(draws))] == pytest.approx(20.0, rel=0.12)
    assert _draws(config, 50) == draws[:50]  # same seed and requests, same latencies
    assert _draws(MockConfig(latency_dist="lognormal", seed=8), 50) != draws[:50]
    assert _draws(MockConfig(latency_s=0.25), 3) == [0.25, 0.25, 0.25]
    with pytest.raises(ValueError, match="median"):
        MockConfig(latency_dist="lognormal", latency_median_s=5, latency_p99_s=1)


def test_every_answer_logs_its_latency(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    config = MockConfig(latency_dist="lognormal", latency_median_s=0.02, latency_p99_s=0.1, request_log=str(log))
    with MockLLMServer(config) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        for _ in range(5):
            assert http.post("/v1/chat/completions", json={"model": "m", "messages": [
                {"role": "user", "content": "hello"}]}).status_code == 200
        stats = http.get("/stats").json()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["status"] for line in lines] == [200] * 5
    assert [line["latency_s"] for line in lines] == stats["latencies"]
    assert stats["latency_sum_s"] == pytest.approx(sum(stats["latencies"]), abs=1e-5)
    # The same request meets the same latency: all five were identical.
    assert len(set(stats["latencies"])) == 1


def _post(http: httpx.Client, model: str, content: str = "hello") -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]})


def test_request_quota_per_model_with_retry_after() -> None:
    config = MockConfig(requests_per_minute=3, model_quotas=(("big", ModelQuota(requests_per_minute=5)),))
    with MockLLMServer(config) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        small = [_post(http, "small").status_code for _ in range(4)]
        big = [_post(http, "big").status_code for _ in range(6)]
        refused = _post(http, "small")
        stats = http.get("/stats").json()
    assert small == [200, 200, 200, 429] and big == [200] * 5 + [429]
    wait = float(refused.headers["Retry-After"])
    assert 55 < wait <= 60  # until the first request leaves the sliding minute
    assert stats["quota_rejections"] == {"small": 2, "big": 1}


def test_token_quota_counts_prompt_and_completion_tokens() -> None:
    prompt = "word " * 40
    with MockLLMServer(MockConfig()) as probe, httpx.Client(base_url=probe.url, timeout=10) as http:
        usage = _post(http, "m", prompt).json()["usage"]
    assert usage["prompt_tokens"] == count_tokens(prompt)
    per_call = usage["total_tokens"]
    config = MockConfig(tokens_per_minute=per_call * 2 + 1)
    with MockLLMServer(config) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        statuses = [_post(http, "m", prompt).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_model_quota_parsing() -> None:
    assert ModelQuota.parse("mock/model=120:40000") == ("mock/model", ModelQuota(120, 40000))
    assert ModelQuota.parse("m=:500") == ("m", ModelQuota(None, 500))
    for bad in ("m", "m=", "=5", "m=x"):
        with pytest.raises(ValueError, match="MODEL=RPM"):
            ModelQuota.parse(bad)
