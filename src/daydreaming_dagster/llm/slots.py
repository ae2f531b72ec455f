"""Call slots shared by every thread and event loop of a process, served by priority.

When the stages of a cohort overlap (several Dagster runs at once in one process, each raw
step with its own event loop), their model calls must still respect one concurrency cap, and
the calls closest to a finished result should go first: an evaluation before an essay before
a draft, and an older batch before a newer one. ``asyncio.Semaphore`` belongs to one loop, so
this one keeps its state under a thread lock and wakes each waiter in the waiter's own loop.

A freed slot is handed straight to the best waiter (never returned to the pool while someone
waits), so a late arrival cannot overtake a queued higher-priority call.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

Priority = tuple[int, ...]
"""Lower sorts first; ties are served in arrival order."""


@dataclass(order=True)
class _Waiter:
    priority: Priority
    sequence: int
    future: asyncio.Future[None] = field(compare=False)
    loop: asyncio.AbstractEventLoop = field(compare=False)
    alive: bool = field(default=True, compare=False)


class CallSlots:
    """A counting semaphore usable from any event loop in any thread, with priorities.

    Args:
        capacity: calls allowed at once (>= 1).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._free = capacity
        self._waiters: list[_Waiter] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._batches = itertools.count()
        self._held_since: dict[int, float] = {}
        self._holds = itertools.count()
        self.completed = 0
        """Holds released so far (through :meth:`slot`)."""
        self.held_s = 0.0
        """Seconds those holds lasted, in total."""

    def __repr__(self) -> str:
        return f"CallSlots(capacity={self.capacity}, in_use={self.in_use}, waiting={self.waiting})"

    @property
    def in_use(self) -> int:
        with self._lock:
            return self.capacity - self._free

    @property
    def waiting(self) -> int:
        with self._lock:
            return sum(1 for waiter in self._waiters if waiter.alive)

    def next_batch_number(self) -> int:
        """A number increasing with each call: batches use it so older batches go first."""
        return next(self._batches)

    async def acquire(self, priority: Priority = (0,)) -> None:
        """Wait for a slot; waiters with a lower ``priority`` are served first."""
        loop = asyncio.get_running_loop()
        with self._lock:
            # Invariant: free slots exist only while nobody waits (release hands slots over).
            if self._free > 0:
                self._free -= 1
                return
            waiter = _Waiter(priority, next(self._sequence), loop.create_future(), loop)
            heapq.heappush(self._waiters, waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                handed_over = not waiter.alive
                waiter.alive = False
            if handed_over and waiter.future.done() and not waiter.future.cancelled():
                self.release()  # granted, but the waiter left before using it
            # Handed over but the grant not yet delivered: _grant sees the cancelled future.
            raise

    def release(self) -> None:
        """Free one slot, handing it to the best live waiter if there is one."""
        with self._lock:
            while self._waiters:
                waiter = heapq.heappop(self._waiters)
                if not waiter.alive:
                    continue
                waiter.alive = False
                try:
                    waiter.loop.call_soon_threadsafe(self._grant, waiter.future)
                except RuntimeError:  # the waiter's loop is closed: nobody to hand it to
                    continue
                return
            self._free = min(self.capacity, self._free + 1)

    def _grant(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            self.release()
        else:
            future.set_result(None)

    @asynccontextmanager
    async def slot(self, priority: Priority = (0,)) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block (timed: see :meth:`longest_hold_s`)."""
        await self.acquire(priority)
        token = next(self._holds)
        with self._lock:
            self._held_since[token] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.held_s += time.monotonic() - self._held_since.pop(token)
                self.completed += 1
            self.release()

    def longest_hold_s(self) -> float:
        """How long calls hold their slot: the mean of finished holds or the age of the oldest
        hold still running, whichever is larger (0 before any call). Tells whether calls are
        slow (a remote model) or fast (a local server, a cache)."""
        now = time.monotonic()
        with self._lock:
            mean = self.held_s / self.completed if self.completed else 0.0
            oldest = max((now - start for start in self._held_since.values()), default=0.0)
        return max(mean, oldest)

