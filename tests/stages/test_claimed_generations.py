"""The raw batch and claims: a generation another live process holds is neither called nor
counted as done here; its outcome is reported as that run's (claimed, or rejected by it); a
dead holder's generation is called here."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from daydreaming_dagster.data_layer.claims import ClaimStore
from daydreaming_dagster.stages.batch import (
    CLAIMED_REASON,
    BatchReport,
    run_prompt_batch,
    run_raw_batch,
)
from daydreaming_dagster.stages.context import StageContext
from daydreaming_dagster.stages.settings import StageSettings

from .conftest import DRAFT_TEXT, Chain, ScriptedProvider


def _other_run_finishes(root: Path, gen_id: str, *, failed: bool, after_s: float) -> threading.Thread:
    """Another run (in this process, so its owner is alive) claims ``gen_id``, then after a
    while persists its output (rejected when ``failed``) and releases the claim."""
    store = ClaimStore(root, "run-other")
    lease = store.acquire("draft", gen_id)
    layer = StageContext.for_root(root).layer

    def finish() -> None:
        time.sleep(after_s)
        layer.write_raw("draft", gen_id, DRAFT_TEXT)
        meta = {"run_id": "run-other", "provider": "scripted", "llm_model_id": "scripted", "cost_usd": 0.002}
        if failed:
            meta.update({"failed": True, "failure_reason": "truncated", "error": "cut at max_tokens"})
        layer.write_raw_metadata("draft", gen_id, meta)
        store.release(lease)

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


def _raw(root: Path, chain: Chain, provider: ScriptedProvider) -> BatchReport:
    ctx = StageContext.for_root(root)
    _, prompts = run_prompt_batch(ctx, "draft", [chain.draft], StageSettings())
    return asyncio.run(run_raw_batch(ctx, "draft", [chain.draft], StageSettings(), provider, run_id="run-me",
                                     prompts=prompts))


def test_generation_produced_by_the_holder_is_reported_claimed(stage_root: Path, chain: Chain,
                                                                provider: ScriptedProvider) -> None:
    other = _other_run_finishes(stage_root, chain.draft, failed=False, after_s=0.6)
    report = _raw(stage_root, chain, provider)
    other.join()
    assert provider.calls == []
    [status] = report.statuses
    assert status.status == "claimed" and status.reason == CLAIMED_REASON
    assert "run run-other" in (status.error or "") and not status.called_model and status.cost_usd == 0
    assert report.summary()["claimed"] == 1 and report.summary()["done"] == 0


def test_generation_rejected_by_the_holder_is_not_paid_again(stage_root: Path, chain: Chain,
                                                             provider: ScriptedProvider) -> None:
    other = _other_run_finishes(stage_root, chain.draft, failed=True, after_s=0.3)
    report = _raw(stage_root, chain, provider)
    other.join()
    assert provider.calls == []
    [status] = report.statuses
    assert status.status == "failed" and status.reason == "truncated"
    assert "by run run-other" in (status.error or "")


def test_dead_holder_is_taken_over_and_called_here(stage_root: Path, chain: Chain, provider: ScriptedProvider) -> None:
    import dataclasses
    import subprocess
    import sys

    store = ClaimStore(stage_root, "run-crashed")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = dataclasses.replace(store._new_lease("draft", chain.draft), pid=dead.pid)
    store.paths.claim_path("draft", chain.draft).write_bytes(lease.to_bytes())
    report = _raw(stage_root, chain, provider)
    assert [s.status for s in report.statuses] == ["done"] and len(provider.calls) == 1
    assert not store.paths.claim_path("draft", chain.draft).exists()


def test_status_shows_who_is_producing_a_generation(stage_root: Path, chain: Chain) -> None:
    from daydreaming_dagster.stages.status import cohort_status

    layer = StageContext.for_root(stage_root).layer
    store = ClaimStore(stage_root, "run-busy")
    lease = store.acquire("draft", chain.draft)
    status = cohort_status(layer, {"draft": [chain.draft, chain.bad_draft]})["draft"]
    assert [s.gen_id for s in status.in_progress] == [chain.draft]
    assert "run run-busy (pid" in (status.in_progress[0].claimed_by or "")
    store.release(lease)
    assert cohort_status(layer, {"draft": [chain.draft]})["draft"].in_progress == []
