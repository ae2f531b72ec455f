"""Adaptive evaluation through ``app.run`` on a copy of the demo (offline provider, whose scores
follow each essay's planted quality): rounds, the record, a kill between rounds."""

from __future__ import annotations

import shutil
from pathlib import Path

from daydreaming_dagster import app
from daydreaming_dagster.adaptive import cohort_selection, read_rounds
from daydreaming_dagster.cohorts import load_membership
from daydreaming_dagster.data_layer import GensDataLayer

ADAPTIVE = """
adaptive:
  evaluation:
    goal: {top: 3, confidence: 0.9}
    first: 2
    batch: 8
"""


def _adaptive_demo(root: Path) -> None:
    spec = root / "cohorts" / "demo" / "spec" / "config.yaml"
    text = spec.read_text().replace("  evaluation_llm: [offline]\n",
                                    "  evaluation_llm: [offline]\n  evaluation_template_replicate: [1, 2, 3]\n")
    spec.write_text(text + ADAPTIVE)


def _evaluation_run_ids(root: Path) -> dict[str, str]:
    layer = GensDataLayer.from_root(root)
    return {r.gen_id: layer.read_raw_metadata("evaluation", r.gen_id)["run_id"]
            for r in load_membership(root, "demo").evaluations if layer.raw_exists("evaluation", r.gen_id)}


def test_adaptive_run_spends_less_and_a_kill_between_rounds_repays_nothing(demo_root: Path, tmp_path: Path) -> None:
    _adaptive_demo(demo_root)
    twin = tmp_path / "twin"
    shutil.copytree(demo_root, twin)

    outcome = app.run(str(demo_root), "demo", report=False)
    assert not outcome.failed
    progress = outcome.selection.adaptive
    assert progress is not None and progress.ended in ("goal met", "design exhausted")
    assert progress.design == 16 * 6 and len(progress.rounds) >= 2
    assert outcome.plan.stages["evaluation"].to_call == 32  # the first round: 2 per essay
    # Each round is one range run over the evaluations it adds.
    assert len(outcome.stages["evaluation"].run_ids) == len(progress.rounds)
    assert [p.stages["evaluation"].to_call for p in outcome.round_plans] == [len(r.picks) for r in progress.rounds[1:]]
    paid = _evaluation_run_ids(demo_root)
    assert len(paid) == progress.chosen < progress.design
    record = read_rounds(str(demo_root), "demo")["adaptive"]
    assert record["ended"] == progress.ended and len(record["rounds"]) == len(progress.rounds)
    assert all(e["reason"] for r in record["rounds"] for e in r["evaluations"])
    states = {h.state for h in outcome.selection.withheld.values()}
    assert states == {"unselected"}

    # The twin is killed after its first round (a stop once round 1 is on disk) ...
    seen: set[str] = set()

    def stop_after_first_round(stage, phase, status) -> None:
        if stage == "evaluation" and phase == "parsed":
            seen.add(status.gen_id)
            if len(seen) >= 32:
                app.request_stop()

    try:
        stopped = app.run(str(twin), "demo", report=False, progress=stop_after_first_round)
    finally:
        app.reset_stop()
    assert stopped.stopped and len(_evaluation_run_ids(twin)) == 32
    assert read_rounds(str(twin), "demo")["adaptive"]["ended"] == "stopped"
    before = _evaluation_run_ids(twin)
    # ... and re-run: the same rounds, round 1 reused, nothing paid twice.
    resumed = app.run(str(twin), "demo", report=False)
    after = _evaluation_run_ids(twin)
    assert {g: after[g] for g in before} == before
    assert set(after) == set(paid)
    assert resumed.selection.round_of == outcome.selection.round_of
    assert cohort_selection(twin, "demo").adaptive.rounds == progress.rounds
