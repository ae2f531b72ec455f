"""Request limits: a global concurrency cap and per-model requests- and tokens-per-minute quotas.

One process may run several event loops at once (Dagster steps that each call
``asyncio.run``, overlapping stage runs in threads), and the limits must hold across all of
them: the cap is a :class:`~.slots.CallSlots`, kept under thread locks rather than bound to one
loop. The per-model quotas must also hold across processes (two runs side by side share the
provider's account): their schedules live in a :class:`~.quotas.QuotaStore`, in memory, in
files beside the data root or in Redis.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .quotas import MemoryQuotaStore, QuotaStore
from .slots import CallSlots, Priority

DEFAULT_COMPLETION_ESTIMATE = 1024
"""Completion tokens a model's first call reserves before any answer of it was seen (then the
mean of its answers so far, capped by ``max_tokens``)."""
CHARS_PER_TOKEN = 4
"""Rough prompt size in tokens before the provider counts it (English text, BPE tokenizers)."""
QUOTA_HEADROOM = 0.02
"""Share of a per-minute quota left unused: requests sent exactly 60 ÷ RPM apart reach the
provider a few milliseconds early or late, and a sliding-minute quota then sees one too many."""


class RateLimiter:
    """Spaces requests ``60 / rpm`` seconds apart after an initial ``burst`` (thread-safe).

    The generic cell rate algorithm: each request reserves the next theoretical arrival
    time in ``store`` (default: this process's memory), then sleeps until its reservation, so
    waiters in different loops, threads, or processes sharing the store share one schedule.
    """

    def __init__(self, requests_per_minute: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic,
                 store: QuotaStore | None = None, key: str = "rpm") -> None:
        if requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be > 0, got {requests_per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.interval_s = 60.0 / requests_per_minute
        self.burst = burst
        self.key = key
        self._store = store or MemoryQuotaStore(clock)

    def reserve(self) -> float:
        """Reserve the next send time; return how long to wait for it (0 when free now)."""
        return self._store.reserve(self.key, 1, self.interval_s, (self.burst - 1) * self.interval_s)

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


class TokenLimiter:
    """Spaces requests by the tokens they use: ``tokens_per_minute`` of a model's schedule.

    A request reserves its estimated tokens before it is sent (it waits for its turn, as with
    :class:`RateLimiter`); once the answer reports real usage, :meth:`settle` corrects the
    schedule by the difference, so over time the model consumes exactly its quota.
    """

    def __init__(self, tokens_per_minute: float, *, store: QuotaStore | None = None, key: str = "tpm") -> None:
        if tokens_per_minute <= 0:
            raise ValueError(f"tokens_per_minute must be > 0, got {tokens_per_minute}")
        self.interval_s = 60.0 / tokens_per_minute
        self.key = key
        self._store = store or MemoryQuotaStore()

    async def acquire(self, tokens: int) -> None:
        wait = self._store.reserve(self.key, max(0, tokens), self.interval_s)
        if wait > 0:
            await asyncio.sleep(wait)

    def settle(self, reserved: int, used: int) -> None:
        """Correct a reservation of ``reserved`` tokens by what the call ``used``."""
        if used != reserved:
            self._store.adjust(self.key, used - reserved, self.interval_s)


@dataclass
class QuotaTicket:
    """What one request reserved of its model's token quota; :meth:`settle` it with the usage
    the provider reports (a failed attempt settles with 0: nothing was consumed)."""

    model_id: str
    reserved_tokens: int
    limiter: TokenLimiter | None
    settled: bool = False

    def settle(self, used_tokens: int | None) -> None:
        if self.settled or self.limiter is None:
            return
        self.settled = True
        self.limiter.settle(self.reserved_tokens, self.reserved_tokens if used_tokens is None else used_tokens)


class RequestLimits:
    """Caps how many requests run at once and how often (and how many tokens) each model uses.

    Args:
        max_concurrency: requests in flight at once across all models (``None``: no cap).
        rpm_for: model id -> requests per minute for that model (``None``: unlimited).
        burst: requests a model may send back to back before the rate applies; 1 spaces every
            request evenly (60 / rpm seconds apart), which is what rate-limited APIs like.
        tpm_for: model id -> tokens per minute for that model (``None``: unlimited).
        store: where the per-model schedules live (default: this process's memory; a
            :class:`~.quotas.FileQuotaStore` or :class:`~.quotas.RedisQuotaStore` shares them
            across processes).
    """

    def __init__(
        self,
        max_concurrency: int | None = None,
        rpm_for: Callable[[str], float | None] | None = None,
        *,
        burst: int = 1,
        tpm_for: Callable[[str], float | None] | None = None,
        store: QuotaStore | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 or None, got {max_concurrency}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.max_concurrency = max_concurrency
        self._rpm_for = rpm_for or (lambda _model_id: None)
        self._tpm_for = tpm_for or (lambda _model_id: None)
        self._burst = burst
        self.store = store or MemoryQuotaStore()
        self._slots = CallSlots(max_concurrency) if max_concurrency else None
        self._limiters: dict[str, RateLimiter | None] = {}
        self._token_limiters: dict[str, TokenLimiter | None] = {}
        self._completions: dict[str, tuple[int, int]] = {}  # model -> (answers seen, tokens)
        self._lock = threading.Lock()

    def requests_per_minute(self, model_id: str) -> float | None:
        """The rate limit applied to ``model_id`` (``None``: unlimited)."""
        rpm = self._rpm_for(model_id)
        return rpm if rpm and rpm > 0 else None

    def tokens_per_minute(self, model_id: str) -> float | None:
        """The token quota applied to ``model_id`` (``None``: unlimited)."""
        tpm = self._tpm_for(model_id)
        return tpm if tpm and tpm > 0 else None

    def _limiter(self, model_id: str) -> RateLimiter | None:
        with self._lock:
            if model_id not in self._limiters:
                rpm = self.requests_per_minute(model_id)
                self._limiters[model_id] = (
                    RateLimiter(rpm * (1 - QUOTA_HEADROOM), self._burst, store=self.store, key=f"rpm:{model_id}")
                    if rpm else None
                )
            return self._limiters[model_id]

    def _token_limiter(self, model_id: str) -> TokenLimiter | None:
        with self._lock:
            if model_id not in self._token_limiters:
                tpm = self.tokens_per_minute(model_id)
                self._token_limiters[model_id] = (
                    TokenLimiter(tpm * (1 - QUOTA_HEADROOM), store=self.store, key=f"tpm:{model_id}") if tpm else None
                )
            return self._token_limiters[model_id]

    def hold_off(self, model_id: str, seconds: float) -> None:
        """The provider answered 429 with ``Retry-After: seconds`` for ``model_id``: no process
        sharing the model's schedule sends it a request before then (models without a
        requests-per-minute schedule: only the refused request waits, as its retry does)."""
        limiter = self._limiter(model_id)
        if limiter is not None and seconds > 0:
            self.store.defer(limiter.key, seconds)

    def estimate_tokens(self, model_id: str, prompt: str, max_tokens: int | None) -> int:
        """Tokens a request is expected to use: its prompt's size plus the mean completion of
        the model's answers so far (capped by ``max_tokens``)."""
        with self._lock:
            seen, total = self._completions.get(model_id, (0, 0))
        completion = total // seen if seen else DEFAULT_COMPLETION_ESTIMATE
        if max_tokens is not None:
            completion = min(completion, max_tokens)
        return len(prompt) // CHARS_PER_TOKEN + 1 + completion

    def record_completion(self, model_id: str, completion_tokens: int | None) -> None:
        """Remember an answer's size for the model's next estimates."""
        if completion_tokens is None:
            return
        with self._lock:
            seen, total = self._completions.get(model_id, (0, 0))
            self._completions[model_id] = (seen + 1, total + completion_tokens)

    @asynccontextmanager
    async def slot(self, model_id: str, priority: Priority = (0,), *, tokens: int = 0) -> AsyncIterator[QuotaTicket]:
        """Hold one concurrency slot, one request of ``model_id``'s rate and ``tokens`` of its
        token quota for a request; yields the :class:`QuotaTicket` to settle with the usage.

        The concurrency slot is taken first, so a request waiting for its model's rate does
        not let others of the same model overtake it.
        """
        limiter = self._limiter(model_id)
        token_limiter = self._token_limiter(model_id) if tokens > 0 else None
        ticket = QuotaTicket(model_id, tokens, token_limiter)
        if self._slots is None:
            await self._take_quota(limiter, token_limiter, tokens)
            async with self._settled(ticket):
                yield ticket
            return
        async with self._slots.slot(priority):
            await self._take_quota(limiter, token_limiter, tokens)
            async with self._settled(ticket):
                yield ticket

    @staticmethod
    @asynccontextmanager
    async def _settled(ticket: QuotaTicket) -> AsyncIterator[None]:
        """A failed attempt gives its tokens back; a successful one the caller did not settle
        (no usage reported) keeps its estimate."""
        try:
            yield
        except BaseException:
            ticket.settle(0)
            raise
        ticket.settle(None)

    @staticmethod
    async def _take_quota(limiter: RateLimiter | None, token_limiter: TokenLimiter | None, tokens: int) -> None:
        if limiter is not None:
            await limiter.acquire()
        if token_limiter is not None:
            await token_limiter.acquire(tokens)
