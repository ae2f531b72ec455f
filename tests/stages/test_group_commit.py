"""Group commit: batches write without a per-file fsync and make their files durable with a
few flushes, never reporting a generation before a flush that covers its files."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from daydreaming_dagster.data_layer import _storage
from daydreaming_dagster.stages.batch import (
    GroupCommit,
    run_parsed_batch,
    run_prompt_batch,
    run_raw_batch,
)
from daydreaming_dagster.stages.context import StageContext
from daydreaming_dagster.stages.settings import StageSettings

from .conftest import Chain, ScriptedProvider


def test_every_commit_waits_for_a_flush_that_started_after_it() -> None:
    flushes: list[tuple[float, float]] = []
    lock = threading.Lock()

    def flush() -> None:
        started = time.monotonic()
        time.sleep(0.05)
        with lock:
            flushes.append((started, time.monotonic()))

    async def main() -> list[tuple[float, float]]:
        group = GroupCommit(flush)

        async def writer(delay: float) -> tuple[float, float]:
            await asyncio.sleep(delay)
            called = time.monotonic()
            await group.commit()
            return called, time.monotonic()

        return await asyncio.gather(*(writer(i * 0.01) for i in range(20)))

    commits = asyncio.run(main())
    assert 2 <= len(flushes) <= 5  # twenty writers, a handful of flushes
    for called, returned in commits:
        assert any(called <= start and end <= returned for start, end in flushes)


def test_a_failed_flush_fails_its_waiters() -> None:
    def flush() -> None:
        raise OSError("disk gone")

    async def main() -> None:
        await GroupCommit(flush).commit()

    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(main())


def test_deferred_writes_skip_fsync_and_flush_syncs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"fsync": 0, "sync": 0}
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.__setitem__("fsync", calls["fsync"] + 1), real_fsync(fd)))
    monkeypatch.setattr(os, "sync", lambda: calls.__setitem__("sync", calls["sync"] + 1))
    for index in range(5):
        _storage.atomic_write_text(tmp_path / f"f{index}.txt", "x", fsync=False)
    assert calls == {"fsync": 0, "sync": 0}
    _storage.flush_to_disk(tmp_path)
    assert calls == {"fsync": 0, "sync": 1}
    _storage.atomic_write_text(tmp_path / "paid.txt", "y")  # the default stays one fsync per file
    assert calls["fsync"] == 1
    written = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert written == ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "paid.txt"]  # no temp files left


def test_batches_fsync_only_paid_outputs_and_flush_before_returning(
    stage_root: Path, chain: Chain, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(os, "sync", lambda: events.append("sync"))
    ctx = StageContext.for_root(stage_root)
    settings = StageSettings()

    _report, prompts = run_prompt_batch(ctx, "draft", [chain.draft], settings)
    assert events == ["sync"]  # the prompt: no fsync of its own, one flush for the batch
    events.clear()
    raw = asyncio.run(run_raw_batch(ctx, "draft", [chain.draft], settings, provider, prompts=prompts))
    assert raw.count("done") == 1
    assert events == ["sync"]  # raw.txt and raw_metadata.json: durable by the group commit
    events.clear()
    parsed = run_parsed_batch(ctx, "draft", [chain.draft], settings)
    assert parsed.count("done") == 1 and events == ["sync"]
    assert ctx.layer.fsync_writes  # the caller's layer is untouched: single writes still fsync
