"""The one model interface every provider implements (no Dagster, no network here).

Stage code builds a :class:`GenerationRequest`, awaits ``provider.generate(request)`` and gets
a :class:`GenerationResult`. Providers (offline, OpenAI-compatible, test doubles) and the
router that picks one per model all implement :class:`LLMProvider`.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from typing import Any

from ..types import Stage


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion to run."""

    prompt: str
    """The rendered prompt, sent as a single user message."""
    model_id: str
    """Catalog id (``llm_models.csv`` ``id`` column)."""
    model: str
    """Provider model name (``llm_models.csv`` ``model`` column), e.g. ``deepseek/deepseek-r1``."""
    stage: Stage
    """Stage the call serves; the offline provider shapes its text by it."""
    max_tokens: int | None = None
    """Completion token cap for this stage (``None``: provider default)."""
    temperature: float | None = None
    """Sampling temperature for this stage (``None``: provider default)."""
    replicate: int = 1
    """Replicate number; the offline provider seeds its output with it."""
    gen_id: str = ""
    """Generation id, for logs and error messages."""


@dataclass(frozen=True)
class Usage:
    """Token usage and cost of one call, as far as the provider reports them."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    """Cost reported by the provider, or computed from the catalog's price table."""
    cost_source: str | None = None
    """``provider`` (reported), ``price_table`` (computed), ``offline`` (synthetic, free) or
    ``None`` (unknown)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "cost_source": self.cost_source,
        }


@dataclass(frozen=True)
class GenerationResult:
    """What a provider returned for a :class:`GenerationRequest`."""

    text: str
    """The answer text (reasoning kept apart in ``reasoning``)."""
    finish_reason: str | None
    """Provider finish reason: ``stop``, ``length`` (truncated), ``content_filter``..."""
    provider: str
    """Name of the provider that served the call (``offline``, ``openrouter``...)."""
    model: str
    """Model name the provider reports having used."""
    usage: Usage = field(default_factory=Usage)
    reasoning: str | None = None
    """Reasoning/thinking text when the API returns it separately."""
    attempts: int = 1
    """HTTP attempts made (1 when the first succeeded)."""
    retry_wait_s: float = 0.0
    """Total seconds spent waiting between attempts."""
    duration_s: float = 0.0
    """Wall time of the call including retries."""
    response_id: str | None = None
    """Provider's response id, when it gives one."""
    requested_provider: str | None = None
    """Provider the catalog names for the model (``llm_models.csv`` ``provider``); differs from
    ``provider`` when the router fell back to the offline provider (no API key configured)."""
    endpoint: str | None = None
    """Base URL that served the call (``None`` for the offline provider)."""

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


_STOP = threading.Event()


def request_stop() -> None:
    """Ask every model client in this process to start no new call (calls in flight finish)."""
    _STOP.set()


def stop_requested() -> bool:
    return _STOP.is_set()


def reset_stop() -> None:
    _STOP.clear()


class CallStopped(Exception):
    """A stop request arrived while the call waited (for a slot or a rate-limit token); nothing
    was sent."""


def ensure_not_stopped(request: GenerationRequest) -> None:
    """Raise :class:`CallStopped` after a stop request; providers call it right before sending."""
    if _STOP.is_set():
        raise CallStopped(request.gen_id or request.model_id)


class LLMProvider(abc.ABC):
    """A source of completions. Implementations must be safe to await concurrently."""

    name: str = "provider"

    @abc.abstractmethod
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Run one completion; raise :class:`~daydreaming_dagster.errors.ProviderError` on
        failure after any retries, :class:`~daydreaming_dagster.errors.BudgetExceeded` when a
        budget forbids starting it."""

    def served_by(self, model_id: str) -> str | None:
        """Name of the provider that would answer ``model_id`` now (``offline`` for synthetic
        text), or ``None`` when unknown. The data layer's reuse decision compares it with the
        provider that produced a stored output (synthetic text is not reused once a real route
        serves the model)."""
        return self.name

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release network resources (HTTP clients); the default has none."""
