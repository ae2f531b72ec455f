"""Claims on generations: one owner at a time, across processes, on local disks and on a real
S3-compatible server; leases of dead or expired owners are taken over by exactly one process."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daydreaming_dagster.data_layer.claims import ClaimHeld, ClaimKeeper, ClaimStore, Lease
from daydreaming_dagster.data_layer.paths import as_root_path

GEN = ("draft", "d_claimed")


def _store(root: Path | str, run_id: str, ttl_s: float = 30.0) -> ClaimStore:
    return ClaimStore(as_root_path(root), run_id, ttl_s=ttl_s)


def _plant(store: ClaimStore, **changes: object) -> Lease:
    """Write a lease as another owner would have left it."""
    lease = dataclasses.replace(store._new_lease(*GEN), **changes)
    path = store.paths.claim_path(*GEN)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lease.to_bytes())
    return lease


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_one_owner_at_a_time_and_release_frees(tmp_path: Path) -> None:
    first, second = _store(tmp_path, "run-a"), _store(tmp_path, "run-b")
    lease = first.acquire(*GEN)
    stored = json.loads(first.paths.claim_path(*GEN).read_text())
    assert stored["run_id"] == "run-a" and stored["host"] and stored["pid"] > 0
    assert stored["expires_at"] > time.time()
    with pytest.raises(ClaimHeld, match="claimed by run run-a") as held:
        second.acquire(*GEN)
    assert held.value.lease.token == lease.token
    first.release(lease)
    assert not first.paths.claim_path(*GEN).exists()
    assert second.acquire(*GEN).run_id == "run-b"


def test_release_and_renew_touch_only_our_own_lease(tmp_path: Path) -> None:
    store = _store(tmp_path, "run-a", ttl_s=5)
    lease = store.acquire(*GEN)
    renewed = store.renew(lease)
    assert renewed is not None and renewed.expires_at >= lease.expires_at
    other = _plant(store, run_id="run-b", token="someone-else")  # taken over meanwhile
    assert store.renew(renewed) is None
    store.release(renewed)
    assert store.holder(*GEN) == other


def test_dead_owner_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path, "run-new")
    _plant(store, run_id="run-crashed", pid=_dead_pid(), expires_at=time.time() + 3600)
    assert store.acquire(*GEN).run_id == "run-new"


def test_reused_pid_is_not_mistaken_for_the_owner(tmp_path: Path) -> None:
    store = _store(tmp_path, "run-new")
    import os

    _plant(store, run_id="run-old", pid=os.getpid(), process_start="1", expires_at=time.time() + 3600)
    assert store.acquire(*GEN).run_id == "run-new"


def test_owner_on_another_host_is_waited_for_until_its_lease_expires(tmp_path: Path) -> None:
    store = _store(tmp_path, "run-here")
    _plant(store, run_id="run-there", host="another-host", pid=1, expires_at=time.time() + 3600)
    with pytest.raises(ClaimHeld, match="run-there"):
        store.acquire(*GEN)
    _plant(store, run_id="run-there", host="another-host", pid=1, expires_at=time.time() - 1)
    assert store.acquire(*GEN).run_id == "run-here"


def test_unreadable_lease_is_taken_over(tmp_path: Path) -> None:
    store = _store(tmp_path, "run-new")
    path = store.paths.claim_path(*GEN)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert store.acquire(*GEN).run_id == "run-new"


def test_keeper_renews_while_held_and_releases_on_exit(tmp_path: Path) -> None:
    store = _store(tmp_path, "run-a", ttl_s=0.3)
    with ClaimKeeper(store):
        lease = store.acquire(*GEN)
        time.sleep(0.8)  # well past the TTL: only renewals keep it ours
        current = store.holder(*GEN)
        assert current is not None and current.token == lease.token and current.expires_at > time.time()
        with pytest.raises(ClaimHeld):
            _store(tmp_path, "run-b").acquire(*GEN)
    assert store.holder(*GEN) is None


def _race(root: str, run_id: str, start: float, results: multiprocessing.Queue) -> None:
    store = _store(root, run_id)
    while time.time() < start:
        pass
    try:
        store.acquire(*GEN)
        results.put(run_id)
    except ClaimHeld:
        results.put(None)


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale-lease"])
def test_racing_processes_exactly_one_wins(tmp_path: Path, stale: bool) -> None:
    if stale:
        _plant(_store(tmp_path, "x"), run_id="run-crashed", pid=_dead_pid())
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()
    start = time.time() + 0.5
    processes = [context.Process(target=_race, args=(str(tmp_path), f"run-{i}", start, results)) for i in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    winners = [r for r in (results.get(timeout=5) for _ in processes) if r is not None]
    assert len(winners) == 1
    assert _store(tmp_path, "x").holder(*GEN).run_id == winners[0]  # type: ignore[union-attr]


@pytest.mark.slow
def test_claims_on_an_s3_compatible_store(s3_root: tuple[str, str]) -> None:
    """Conditional PUTs: If-None-Match to claim, If-Match (the ETag) to take over or renew."""
    _, root = s3_root
    first, second = _store(root, "run-a"), _store(root, "run-b")
    assert not first.is_local
    lease = first.acquire(*GEN)
    with pytest.raises(ClaimHeld, match="run-a"):
        second.acquire(*GEN)
    assert first.renew(lease) is not None
    first.release(lease)
    assert second.acquire(*GEN).run_id == "run-b"
    # A crashed owner's lease (expired, another host) is taken over by exactly one of two stores.
    _plant(first, run_id="run-crashed", host="gone", expires_at=time.time() - 1)
    stale, version = second._read(second.paths.claim_path(*GEN))
    assert stale is not None and stale.run_id == "run-crashed"
    assert second._swap(second.paths.claim_path(*GEN), stale, second._new_lease(*GEN), version)
    assert not first._swap(first.paths.claim_path(*GEN), stale, first._new_lease(*GEN), version)
    assert first.holder(*GEN).run_id == "run-b"  # type: ignore[union-attr]
