"""Request limits: a global concurrency cap and per-model requests-per-minute limits.

One process may run several event loops at once (Dagster steps that each call
``asyncio.run``, overlapping stage runs in threads), and the limits must hold across all of
them: the cap is a :class:`~.slots.CallSlots` and each model's rate a :class:`RateLimiter`,
both kept under thread locks rather than bound to one loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from .slots import CallSlots, Priority


class RateLimiter:
    """Spaces requests ``60 / rpm`` seconds apart after an initial ``burst`` (thread-safe).

    The generic cell rate algorithm: each request reserves the next theoretical arrival
    time under a lock, then sleeps until its reservation, so waiters in different loops and
    threads share one schedule.
    """

    def __init__(self, requests_per_minute: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic) -> None:
        if requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be > 0, got {requests_per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.interval_s = 60.0 / requests_per_minute
        self.burst = burst
        self._clock = clock
        self._next_free = 0.0  # theoretical arrival time of the next request
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next send time; return how long to wait for it (0 when free now)."""
        with self._lock:
            now = self._clock()
            earliest = self._next_free - (self.burst - 1) * self.interval_s
            start = max(now, earliest)
            self._next_free = max(self._next_free, now) + self.interval_s
            return start - now

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


class RequestLimits:
    """Caps how many requests run at once and how often each model is called.

    Args:
        max_concurrency: requests in flight at once across all models (``None``: no cap).
        rpm_for: model id -> requests per minute for that model (``None``: unlimited).
        burst: requests a model may send back to back before the rate applies; 1 spaces every
            request evenly (60 / rpm seconds apart), which is what rate-limited APIs like.
    """

    def __init__(
        self,
        max_concurrency: int | None = None,
        rpm_for: Callable[[str], float | None] | None = None,
        *,
        burst: int = 1,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 or None, got {max_concurrency}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.max_concurrency = max_concurrency
        self._rpm_for = rpm_for or (lambda _model_id: None)
        self._burst = burst
        self._slots = CallSlots(max_concurrency) if max_concurrency else None
        self._limiters: dict[str, RateLimiter | None] = {}
        self._lock = threading.Lock()

    def requests_per_minute(self, model_id: str) -> float | None:
        """The rate limit applied to ``model_id`` (``None``: unlimited)."""
        rpm = self._rpm_for(model_id)
        return rpm if rpm and rpm > 0 else None

    def _limiter(self, model_id: str) -> RateLimiter | None:
        with self._lock:
            if model_id not in self._limiters:
                rpm = self.requests_per_minute(model_id)
                self._limiters[model_id] = RateLimiter(rpm, self._burst) if rpm else None
            return self._limiters[model_id]

    @asynccontextmanager
    async def slot(self, model_id: str, priority: Priority = (0,)) -> AsyncIterator[None]:
        """Hold one concurrency slot and one rate-limit token of ``model_id`` for a request.

        The concurrency slot is taken first, so a request waiting for its model's rate does
        not let others of the same model overtake it.
        """
        limiter = self._limiter(model_id)
        if self._slots is None:
            if limiter is not None:
                await limiter.acquire()
            yield
            return
        async with self._slots.slot(priority):
            if limiter is not None:
                await limiter.acquire()
            yield
