"""Fixtures for the model-layer tests: a real mock HTTP server on loopback per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from daydreaming_dagster.catalog_types import ModelInfo
from daydreaming_dagster.llm import GenerationRequest, RetryPolicy
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer

# Retries in tests wait milliseconds, not seconds, unless a test asks for more.
FAST_RETRY = RetryPolicy(max_attempts=4, backoff_initial_s=0.01, backoff_max_s=0.05, jitter_s=0.01)


@pytest.fixture
def mock_server() -> Iterator[MockLLMServer]:
    """A fresh mock server (no latency, no random errors) so no test sees another's calls."""
    with MockLLMServer(MockConfig()) as server:
        yield server


def make_request(
    prompt: str = "Write notes linking rivers and markets.",
    *,
    model_id: str = "mock",
    model: str = "mock/model",
    stage: str = "draft",
    replicate: int = 1,
    max_tokens: int | None = None,
    temperature: float | None = None,
    gen_id: str = "",
) -> GenerationRequest:
    """A request with test defaults."""
    return GenerationRequest(
        prompt=prompt,
        model_id=model_id,
        model=model,
        stage=stage,  # type: ignore[arg-type]
        replicate=replicate,
        max_tokens=max_tokens,
        temperature=temperature,
        gen_id=gen_id,
    )


def model_info(model_id: str = "mock", provider: str = "openrouter", **kwargs: object) -> ModelInfo:
    """A catalog row for ``model_id`` (provider model name ``<model_id>/model``)."""
    return ModelInfo(id=model_id, model=f"{model_id}/model", provider=provider, **kwargs)  # type: ignore[arg-type]
