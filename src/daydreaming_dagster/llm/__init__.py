"""The language-model layer: one interface, an offline provider, OpenAI-compatible endpoints.

Import from here rather than from the modules. No Dagster in this package.

- :class:`LLMProvider` / :class:`GenerationRequest` / :class:`GenerationResult` / :class:`Usage`:
  the interface (``base``).
- :func:`build_llm_client` + :class:`LLMConfig`: the router a run uses (``router``).
- :class:`OfflineProvider` and :func:`synthetic_completion`: synthetic text, no network.
- :class:`OpenAICompatibleProvider`: OpenRouter, OpenAI, vLLM, Ollama, llama.cpp... by base URL.
- :class:`CostLedger`, :class:`RequestLimits`: budget and limits.
- ``mock_server`` (imported on demand): the mock HTTP server for tests and benchmarks.
"""

from __future__ import annotations

from .base import GenerationRequest, GenerationResult, LLMProvider, Usage
from .budget import CostLedger, CostSummary, StageCost
from .limits import RequestLimits
from .offline import (
    OFFLINE_PROVIDER_NAME,
    SYNTHETIC_MARKER,
    OfflineProvider,
    count_tokens,
    synthetic_completion,
)

# The HTTP provider and the router import the `openai` SDK (~0.5 s); load them on first use so
# offline-only code (and `import daydreaming_dagster.llm.base`) stays fast.
_LAZY: dict[str, str] = {
    "OPENAI_BASE_URL": ".routes",
    "OPENROUTER_BASE_URL": ".routes",
    "OpenAICompatibleProvider": ".openai_compatible",
    "RetryPolicy": ".openai_compatible",
    "parse_retry_after": ".openai_compatible",
    "API_KEY_ENV": ".routes",
    "BASE_URL_ENV": ".routes",
    "EndpointConfig": ".routes",
    "LLMConfig": ".routes",
    "RoutePlan": ".routes",
    "plan_route": ".routes",
    "plan_routes": ".routes",
    "Route": ".router",
    "RoutingProvider": ".router",
    "build_llm_client": ".router",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "OFFLINE_PROVIDER_NAME",
    "OPENAI_BASE_URL",
    "OPENROUTER_BASE_URL",
    "SYNTHETIC_MARKER",
    "CostLedger",
    "CostSummary",
    "EndpointConfig",
    "GenerationRequest",
    "GenerationResult",
    "LLMConfig",
    "LLMProvider",
    "OfflineProvider",
    "OpenAICompatibleProvider",
    "RequestLimits",
    "RetryPolicy",
    "Route",
    "RoutePlan",
    "RoutingProvider",
    "StageCost",
    "Usage",
    "build_llm_client",
    "count_tokens",
    "parse_retry_after",
    "plan_route",
    "plan_routes",
    "synthetic_completion",
]
