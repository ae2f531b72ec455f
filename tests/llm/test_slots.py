"""CallSlots: one cap across threads and event loops, served by priority, never leaking."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from daydreaming_dagster.llm.limits import RateLimiter
from daydreaming_dagster.llm.slots import CallSlots


def test_cap_holds_across_threads_each_with_its_own_loop() -> None:
    slots = CallSlots(3)
    active = 0
    peak = 0
    lock = threading.Lock()

    async def call() -> None:
        nonlocal active, peak
        async with slots.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            await asyncio.sleep(0.02)
            with lock:
                active -= 1

    async def many() -> None:
        await asyncio.gather(*(call() for _ in range(10)))

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert peak == 3
    assert slots.in_use == 0 and slots.waiting == 0
    assert slots.completed == 30


def test_freed_slots_go_to_the_lowest_priority_first() -> None:
    slots = CallSlots(1)
    order: list[str] = []

    async def main() -> None:
        await slots.acquire()  # hold the only slot while the others queue

        async def waiter(name: str, priority: tuple[int, ...]) -> None:
            async with slots.slot(priority):
                order.append(name)

        tasks = [
            asyncio.create_task(waiter("draft-old", (2, 0))),
            asyncio.create_task(waiter("draft-new", (2, 1))),
            asyncio.create_task(waiter("evaluation", (0, 5))),
            asyncio.create_task(waiter("essay", (1, 9))),
        ]
        await asyncio.sleep(0.01)
        assert slots.waiting == 4
        slots.release()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == ["evaluation", "essay", "draft-old", "draft-new"]


def test_a_cancelled_waiter_does_not_keep_or_lose_a_slot() -> None:
    slots = CallSlots(1)

    async def main() -> None:
        await slots.acquire()
        waiting = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        slots.release()
        assert slots.in_use == 0
        # Granted and then cancelled before it ran: the slot comes back too.
        await slots.acquire()
        late = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0.01)
        slots.release()  # hands the slot to `late`...
        late.cancel()  # ...which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await late
        await asyncio.sleep(0.01)
        assert slots.in_use == 0
        await asyncio.wait_for(slots.acquire(), timeout=1)
        slots.release()

    asyncio.run(main())


def test_longest_hold_tells_slow_calls_from_fast_ones() -> None:
    slots = CallSlots(2)
    assert slots.longest_hold_s() == 0.0

    async def hold(seconds: float) -> None:
        async with slots.slot():
            await asyncio.sleep(seconds)

    asyncio.run(hold(0.0))
    assert slots.longest_hold_s() < 0.05

    async def watch_a_slow_call() -> float:
        task = asyncio.create_task(hold(0.3))
        await asyncio.sleep(0.2)
        seen = slots.longest_hold_s()  # the call still runs: its age counts
        await task
        return seen

    assert asyncio.run(watch_a_slow_call()) >= 0.15
    with pytest.raises(ValueError):
        CallSlots(0)


def test_rate_limiter_spaces_requests_across_threads() -> None:
    limiter = RateLimiter(requests_per_minute=600)  # one every 0.1 s
    sent: list[float] = []
    lock = threading.Lock()

    async def send(count: int) -> None:
        for _ in range(count):
            await limiter.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=asyncio.run, args=(send(3),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    sent.sort()
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(sent) == 6
    assert min(gaps) >= 0.09  # one schedule for both loops, not one each


def test_rate_limiter_burst_then_steady_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(requests_per_minute=60, burst=3, clock=lambda: now[0])
    waits = [limiter.reserve() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(1.0) and waits[4] == pytest.approx(2.0)
    now[0] += 60  # idle for a minute: the burst is available again
    assert limiter.reserve() == 0.0
    with pytest.raises(ValueError):
        RateLimiter(0)
