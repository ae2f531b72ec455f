"""Quotas shared across processes: request and token schedules in files (one machine) and in a
real Redis server (many machines), corrected by the usage answers report."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daydreaming_dagster.llm.limits import RateLimiter, RequestLimits, TokenLimiter
from daydreaming_dagster.llm.quotas import (
    QUOTA_DIR_ENV,
    QUOTA_REDIS_URL_ENV,
    FileQuotaStore,
    MemoryQuotaStore,
    QuotaStore,
    RedisQuotaStore,
    quota_store_for,
)
from tests.support.servers import LOOPBACK, free_port, stop_process, wait_for_port


def _send_times(directory: str, count: int, start: float, out: multiprocessing.Queue) -> None:
    limiter = RateLimiter(requests_per_minute=600, store=FileQuotaStore(Path(directory)), key="rpm:m")

    async def send() -> list[float]:
        sent = []
        for _ in range(count):
            await limiter.acquire()
            sent.append(time.time())
        return sent

    while time.time() < start:
        time.sleep(0.001)
    out.put(asyncio.run(send()))


def test_file_store_spaces_requests_of_several_processes(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = context.Queue()
    start = time.time() + 0.3
    processes = [context.Process(target=_send_times, args=(str(tmp_path), 4, start, out)) for _ in range(3)]
    for process in processes:
        process.start()
    sent = sorted(t for _ in processes for t in out.get(timeout=30))
    for process in processes:
        process.join(10)
    assert len(sent) == 12
    # One schedule at 600 rpm for all three processes, not one each: the k-th send comes at least
    # k turns of 0.1 s after the first (a process woken late only delays its own send).
    assert all(sent[k] - sent[0] >= k * 0.1 - 0.03 for k in range(12))
    assert sent[-1] - sent[0] < 11 * 0.1 + 0.3  # and no slower than that schedule


def _token_schedule(store: QuotaStore) -> None:
    limiter = TokenLimiter(tokens_per_minute=60_000, store=store, key="tpm:m")  # 1000 tokens a second

    async def main() -> tuple[float, float, float]:
        clock = time.monotonic()
        await limiter.acquire(100)  # free at once
        first = time.monotonic() - clock
        await limiter.acquire(100)  # after the first's 0.1 s
        second = time.monotonic() - clock
        limiter.settle(100, 400)  # the second answer used 300 more than reserved: 0.3 s of debt
        await limiter.acquire(100)
        return first, second, time.monotonic() - clock

    first, second, third = asyncio.run(main())
    assert first < 0.05
    assert 0.08 <= second < 0.2
    assert 0.45 <= third < 0.65  # 0.1 (own reservation) + 0.1 + 0.3 of debt


def test_token_limiter_spaces_by_tokens_and_settles_by_usage(tmp_path: Path) -> None:
    _token_schedule(MemoryQuotaStore())
    _token_schedule(FileQuotaStore(tmp_path))


def test_failed_attempt_gives_its_tokens_back() -> None:
    limits = RequestLimits(tpm_for=lambda _m: 60_000)
    key = "tpm:m"

    async def main() -> None:
        with pytest.raises(RuntimeError):
            async with limits.slot("m", tokens=600):
                raise RuntimeError("HTTP 429")
        async with limits.slot("m", tokens=600) as ticket:
            ticket.settle(100)

    asyncio.run(main())
    # 600 reserved and refunded, then 600 reserved and settled at 100: 0.1 s of schedule used.
    assert limits.store.reserve(key, 0, 0.001) == pytest.approx(0.1, abs=0.05)


def test_estimates_learn_the_models_answer_size() -> None:
    limits = RequestLimits()
    assert limits.estimate_tokens("m", "x" * 400, 4096) == 101 + 1024
    assert limits.estimate_tokens("m", "x" * 400, 200) == 101 + 200
    limits.record_completion("m", 300)
    limits.record_completion("m", 500)
    assert limits.estimate_tokens("m", "", None) == 1 + 400


def test_store_choice_follows_the_data_root(tmp_path: Path) -> None:
    local = quota_store_for(tmp_path / "data", environ={})
    assert isinstance(local, FileQuotaStore) and local.directory == tmp_path / "data" / ".daydream" / "quotas"
    remote = quota_store_for("s3://bucket/store", environ={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert isinstance(remote, FileQuotaStore) and str(remote.directory).startswith(str(tmp_path / "cache"))
    chosen = quota_store_for(tmp_path, environ={QUOTA_DIR_ENV: str(tmp_path / "q")})
    assert isinstance(chosen, FileQuotaStore) and chosen.directory == tmp_path / "q"
    assert isinstance(quota_store_for(None, environ={}), MemoryQuotaStore)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway redis-server on a free port (the machine's shared one is left alone)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/install_system_deps.sh)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(LOOPBACK, port, timeout=20, process=process, what="redis-server")
        yield f"redis://{LOOPBACK}:{port}/0"
    finally:
        stop_process(process)


@pytest.mark.slow
def test_redis_store_shares_one_schedule(redis_url: str, tmp_path: Path) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    first, second = RedisQuotaStore(redis_url, prefix), RedisQuotaStore(redis_url, prefix)
    waits = [store.reserve("rpm:m", 1, 0.2) for store in (first, second, first)]
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(0.2, abs=0.05) and waits[2] == pytest.approx(0.4, abs=0.05)
    first.adjust("rpm:m", -2, 0.2)  # give two back: the next waits only for the first's turn
    assert second.reserve("rpm:m", 1, 0.2) == pytest.approx(0.2, abs=0.05)
    first.defer("rpm:held", 0.5)  # a Retry-After: the other store's next request waits it out
    assert second.reserve("rpm:held", 1, 0.01) == pytest.approx(0.5, abs=0.05)
    _token_schedule(RedisQuotaStore(redis_url, f"test:{uuid.uuid4().hex}:"))
    chosen = quota_store_for(tmp_path, environ={QUOTA_REDIS_URL_ENV: redis_url})
    assert isinstance(chosen, RedisQuotaStore) and chosen.url == redis_url


def test_retry_after_holds_every_process_sharing_the_schedule(tmp_path: Path) -> None:
    """A 429's Retry-After seen by one process pauses the model's shared schedule for all."""
    first = RequestLimits(rpm_for=lambda _m: 6000, store=FileQuotaStore(tmp_path))
    second = RequestLimits(rpm_for=lambda _m: 6000, store=FileQuotaStore(tmp_path))
    first.hold_off("m", 0.4)

    async def one_request() -> float:
        clock = time.monotonic()
        async with second.slot("m"):
            return time.monotonic() - clock

    assert 0.35 <= asyncio.run(one_request()) < 0.6
    assert asyncio.run(one_request()) < 0.1  # then the usual 10 ms spacing
    RequestLimits(store=FileQuotaStore(tmp_path)).hold_off("unlimited", 5)  # no schedule: nothing held
