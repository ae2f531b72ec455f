"""Request limits: a global concurrency cap and per-model requests-per-minute limits.

asyncio primitives (``Semaphore``, ``aiolimiter.AsyncLimiter``) belong to the event loop that
first waits on them, and one process may run several event loops over its life (Dagster
steps that each call ``asyncio.run``, or threads). So :class:`RequestLimits` creates its
primitives lazily, once per running loop: within one loop the caps are exact; separate loops
running *at the same time* (threads) each get their own caps.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter


@dataclass
class _LoopLimits:
    semaphore: asyncio.Semaphore | None
    per_model: dict[str, AsyncLimiter | None] = field(default_factory=dict)


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
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopLimits] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def requests_per_minute(self, model_id: str) -> float | None:
        """The rate limit applied to ``model_id`` (``None``: unlimited)."""
        rpm = self._rpm_for(model_id)
        return rpm if rpm and rpm > 0 else None

    def _state(self) -> _LoopLimits:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._loops.get(loop)
            if state is None:
                semaphore = (
                    asyncio.Semaphore(self.max_concurrency) if self.max_concurrency else None
                )
                state = self._loops[loop] = _LoopLimits(semaphore)
            return state

    def _limiter(self, state: _LoopLimits, model_id: str) -> AsyncLimiter | None:
        if model_id not in state.per_model:
            rpm = self.requests_per_minute(model_id)
            # AsyncLimiter(burst, period) is a leaky bucket of capacity `burst` draining at
            # `burst / period` per second, i.e. rpm / 60 requests per second.
            state.per_model[model_id] = (
                AsyncLimiter(self._burst, 60.0 * self._burst / rpm) if rpm else None
            )
        return state.per_model[model_id]

    @asynccontextmanager
    async def slot(self, model_id: str) -> AsyncIterator[None]:
        """Hold one concurrency slot and one rate-limit token of ``model_id`` for a request.

        The concurrency slot is taken first, so a request waiting for its model's rate does
        not let others of the same model overtake it.
        """
        state = self._state()
        limiter = self._limiter(state, model_id)
        if state.semaphore is None:
            if limiter is not None:
                await limiter.acquire()
            yield
            return
        async with state.semaphore:
            if limiter is not None:
                await limiter.acquire()
            yield
