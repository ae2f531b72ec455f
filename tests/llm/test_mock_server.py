"""The mock OpenAI-compatible server itself: endpoints, stage inference, injected failures,
and many concurrent slow requests."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from daydreaming_dagster.llm.mock_server import (
    MockConfig,
    MockLLMServer,
    ScriptedResponse,
    infer_stage,
)
from daydreaming_dagster.llm.offline import synthetic_completion


def chat(model: str = "m", content: str = "hello", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def test_stage_inference_rules() -> None:
    assert infer_stage("anything", "essay") == "essay"
    assert infer_stage("Rate it. End with SCORE: N", None) == "evaluation"
    assert infer_stage("Give a final score out of 10", "bogus") == "evaluation"
    assert infer_stage('Put the idea in <essay-idea stage="1"> tags', None) == "draft"
    assert infer_stage("Expand these notes into an essay.", None) == "essay"
    assert infer_stage("List links between tides and clocks.", None) == "draft"


def test_http_endpoints(mock_server: MockLLMServer) -> None:
    with httpx.Client(base_url=mock_server.url, timeout=5) as http:
        answer = http.post("/v1/chat/completions", json=chat(content="Rate it. SCORE: N"))
        assert answer.status_code == 200
        body = answer.json()
        text = body["choices"][0]["message"]["content"]
        assert text == synthetic_completion("Rate it. SCORE: N", "evaluation", "m", 1)
        assert text.strip().splitlines()[-1].startswith("SCORE: ")
        assert body["usage"]["cost"] > 0
        replicate = http.post(
            "/api/v1/chat/completions",
            json=chat(content="Rate it. SCORE: N"),
            headers={"X-Daydream-Replicate": "2"},
        ).json()
        assert replicate["choices"][0]["message"]["content"] != text
        assert http.get("/v1/models").json()["data"][0]["id"] == "mock-model"
        stats = http.get("/stats").json()
        assert stats["total"] == 2
        assert stats["by_path"] == {"/v1/chat/completions": 1, "/api/v1/chat/completions": 1}
        assert stats["by_status"] == {"200": 2} and stats["by_model"] == {"m": 2}
        assert http.post("/v1/chat/completions", content=b"not json").status_code == 400
        assert http.get("/v1/chat/completions").status_code == 405
        assert http.get("/nowhere").status_code == 404
        script = [{"status": 503, "retry_after": 0.5}]
        assert http.post("/script", json=script).json() == {"ok": True, "pending": 1}
        scripted = http.post("/v1/chat/completions", json=chat())
        assert scripted.status_code == 503 and scripted.headers["retry-after"] == "0.5"
        assert http.post("/reset").json() == {"ok": True}
        assert http.get("/stats").json()["total"] == 0


def test_rate_limit_answers_429_with_retry_after() -> None:
    with MockLLMServer(MockConfig(rate_limit_per_s=3)) as server:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            statuses = [http.post("/v1/chat/completions", json=chat()) for _ in range(5)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
        wait = float(statuses[3].headers["retry-after"])
        assert 0 < wait <= 1.0


def test_error_and_truncate_rates_are_seeded_and_split() -> None:
    def run(seed: int) -> list[tuple[int, str | None]]:
        config = MockConfig(error_rate=0.5, truncate_rate=0.5, seed=seed, retry_after_s=0.25)
        with MockLLMServer(config) as server, httpx.Client(base_url=server.url) as http:
            out = []
            for _ in range(60):
                r = http.post("/v1/chat/completions", json=chat())
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "0.25"
                reason = r.json()["choices"][0]["finish_reason"] if r.status_code == 200 else None
                out.append((r.status_code, reason))
            return out

    first = run(7)
    assert first == run(7)  # same seed, same sequence
    statuses = {s for s, _ in first}
    assert statuses == {200, 429, 500}
    assert {reason for _, reason in first if reason} == {"stop", "length"}


def test_scripted_queue_is_served_in_order_then_default(mock_server: MockLLMServer) -> None:
    mock_server.script(ScriptedResponse(429, retry_after=0.1), times=2)
    mock_server.script(ScriptedResponse(text="scripted"))
    with httpx.Client(base_url=mock_server.url) as http:
        got = [http.post("/v1/chat/completions", json=chat()) for _ in range(4)]
    assert [r.status_code for r in got] == [429, 429, 200, 200]
    assert got[2].json()["choices"][0]["message"]["content"] == "scripted"
    assert got[3].json()["choices"][0]["message"]["content"].startswith("[synthetic")


def test_chunked_request_bodies_are_read(mock_server: MockLLMServer) -> None:
    def chunks():  # noqa: ANN202
        yield b'{"model": "m", "messages": '
        yield b'[{"role": "user", "content": "hi"}]}'

    with httpx.Client(base_url=mock_server.url) as http:
        answer = http.post("/v1/chat/completions", content=chunks())
    assert answer.status_code == 200 and answer.json()["model"] == "m"


@pytest.mark.slow
def test_64_concurrent_slow_requests_overlap() -> None:
    with MockLLMServer(MockConfig(latency_s=2.0)) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)

        async def run() -> float:
            started = time.perf_counter()
            try:
                await asyncio.gather(
                    *(
                        client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": f"call {i}"}]
                        )
                        for i in range(64)
                    )
                )
            finally:
                await client.close()
            return time.perf_counter() - started

        elapsed = asyncio.run(run())
        stats = server.stats()
        assert stats["by_status"] == {"200": 64}
        assert stats["max_in_flight"] == 64
        assert elapsed < 4.0  # all 64 sleep together, not one after another
