"""The tournament through ``app.run`` and ``daydream run``: the shipped demo plays its rounds
offline; a run killed (SIGKILL) in the middle of a round resumes there without paying for the
comparisons it finished; a second re-run calls nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daydreaming_dagster import app
from daydreaming_dagster.cohorts import load_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from tests.support.demo import copy_demo


def _raw_snapshot(root: Path, stage: str = "comparison") -> dict[str, bytes]:
    """Raw metadata of every generation of ``stage`` with a raw output (its call's record)."""
    layer = GensDataLayer.from_root(root)
    return {g: layer.raw_metadata_path(stage, g).read_bytes()
            for g in layer.list_generations(stage) if layer.raw_exists(stage, g)}


def test_demo_plays_its_rounds_and_a_rerun_calls_nothing(tmp_path: Path) -> None:
    root = copy_demo(tmp_path / "data", tournament=True)
    outcome = app.run(str(root), "demo", report=False)
    assert not outcome.failed
    state = outcome.tournament
    assert state is not None and state.done and state.verdicts + state.failed == 48
    # The first plan cannot pair essays that do not exist yet: each round is planned and run
    # after the verdicts of the one before it.
    assert outcome.plan.stages["comparison"].generations == ()
    assert [p.stages["comparison"].to_call for p in outcome.round_plans] == [16, 16, 16]
    assert len(outcome.stages["comparison"].run_ids) == 3
    rows = load_membership(root, "demo").comparisons
    assert [sum(1 for r in rows if r.round == n) for n in (1, 2, 3)] == [16, 16, 16]
    layer = GensDataLayer.from_root(root)
    assert all(layer.read_parsed("comparison", r.gen_id) in ("A", "B", "tie") for r in rows)
    assert "WINNER:" in layer.read_raw("comparison", rows[0].gen_id)

    before = _raw_snapshot(root)
    again = app.run(str(root), "demo", report=False)
    assert again.run_ids == [] and not again.plan.has_work and again.round_plans == []
    assert _raw_snapshot(root) == before
    assert any("3 of 3 rounds complete" in line for line in app.spending_status(str(root), "demo"))


def test_dry_run_counts_the_tournament(tmp_path: Path) -> None:
    root = copy_demo(tmp_path / "data", tournament=True)
    notes = app.plan(str(root), "demo").notes
    assert any("makes 48 judge calls in all (3 rounds x 8 pairs x 2 calls per pair)" in n for n in notes)


def _count_raw(root: Path) -> int:
    folder = root / "gens" / "comparison"
    return sum(1 for _ in folder.glob("*/raw.txt")) if folder.is_dir() else 0


@pytest.mark.slow
def test_a_run_killed_mid_round_resumes_without_repaying(tmp_path: Path) -> None:
    root = copy_demo(tmp_path / "data", mock_model=True, tournament=True)
    # Slow answers so the kill lands inside round 2, and one call at a time so the calls a
    # kill interrupts are few.
    with MockLLMServer(MockConfig(latency_s=0.15)) as server:
        env = {**os.environ, "DAYDREAMING_LLM_BASE_URL": server.base_url, "DAYDREAMING_LLM_API_KEY": "test",
               "DAYDREAMING_DATA_ROOT": str(root)}
        log = (tmp_path / "run.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "daydreaming_dagster", "run", "demo", "--no-report", "--concurrency", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while _count_raw(root) < 16 + 5:  # round 1 done, round 2 under way
                assert process.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the run never reached round 2"
                time.sleep(0.05)
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=30)
            log.close()
        assert process.returncode == -signal.SIGKILL
        finished = _raw_snapshot(root)
        assert 16 + 5 <= len(finished) < 48
        rounds_seen = {r.round for r in load_membership(root, "demo").comparisons}
        assert rounds_seen == {1, 2}  # killed inside round 2: round 3 was never decided
        server.reset()

        os.environ["DAYDREAMING_LLM_BASE_URL"] = server.base_url
        os.environ["DAYDREAMING_LLM_API_KEY"] = "test"
        try:
            resumed = app.run(str(root), "demo", report=False)
            calls_resuming = server.stats()["total"]
            server.reset()
            again = app.run(str(root), "demo", report=False)
            calls_again = server.stats()["total"]
        finally:
            del os.environ["DAYDREAMING_LLM_BASE_URL"], os.environ["DAYDREAMING_LLM_API_KEY"]
    assert not resumed.failed and resumed.tournament is not None and resumed.tournament.done
    after = _raw_snapshot(root)
    # Every comparison finished before the kill is kept as it was: paid once.
    assert {g: after[g] for g in finished} == finished
    assert len(after) == 48
    assert calls_resuming == 48 - len(finished)  # only the unfinished comparisons were called
    assert calls_again == 0 and again.run_ids == []
