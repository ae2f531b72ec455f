"""The cohort sensor runs a gated cohort round by round, never starting a round while one runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from daydreaming_dagster.adaptive import cohort_selection
from daydreaming_dagster.cohorts import load_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.failures import ROUND_TAG, STAGE_TAG
from tests.adaptive.test_gate_run import GATE
from tests.automation.test_cohort_sensor import _launch, _tick


@pytest.fixture
def instance() -> DagsterInstance:
    # A real (SQLite) instance in the per-test DAGSTER_HOME set by tests/conftest.py.
    with DagsterInstance.get() as inst:
        yield inst


def test_sensor_runs_a_gated_cohort_in_rounds(demo_root: Path, instance: DagsterInstance,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYDREAMING_AUTO_RUN", "1")
    spec = demo_root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text() + GATE)
    cursor = None
    launched = []
    for _ in range(12):
        result = _tick(instance, demo_root, cursor)
        cursor = result.cursor
        if not result.run_requests:
            break
        # While the requested runs have not finished, the next tick starts nothing.
        if any(STAGE_TAG in r.tags for r in result.run_requests):
            assert _tick(instance, demo_root, cursor).run_requests == []
        for request in result.run_requests:
            assert _launch(instance, demo_root, request)
        launched += [r for r in result.run_requests if STAGE_TAG in r.tags]
    else:
        raise AssertionError("sensor kept requesting runs")
    rounds = [(r.tags[STAGE_TAG], r.tags[ROUND_TAG]) for r in launched]
    assert ("essay", "2") in rounds and ("evaluation", "2") in rounds and ("draft", "2") not in rounds
    selection = cohort_selection(demo_root, "demo")
    assert selection.settled and sum(d.passed for d in selection.gate) == 2
    layer = GensDataLayer.from_root(demo_root)
    membership = load_membership(demo_root, "demo")
    for row in (*membership.essays, *membership.evaluations):
        # Gated members were skipped inside the range runs: never called; every other one is done.
        assert layer.raw_exists(row.stage, row.gen_id) == selection.allows(row.gen_id)
    assert (demo_root / "cohorts" / "demo" / "rounds.json").is_file()


@pytest.mark.slow
def test_launch_runs_a_gated_cohort_in_rounds(demo_root: Path) -> None:
    from daydreaming_dagster import app

    spec = demo_root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text() + GATE)
    runs = list(app.launch(str(demo_root), "demo", parallel=2))
    assert all(r.success for r in runs), [r.error for r in runs if not r.success]
    assert {(r.stage, r.round) for r in runs} == {("draft", 1), ("essay", 1), ("evaluation", 1),
                                                 ("essay", 2), ("evaluation", 2)}
    selection = cohort_selection(demo_root, "demo")
    layer = GensDataLayer.from_root(demo_root)
    for row in (*load_membership(demo_root, "demo").essays, *load_membership(demo_root, "demo").evaluations):
        assert layer.raw_exists(row.stage, row.gen_id) == selection.allows(row.gen_id)


def _tournament_demo(root: Path) -> None:
    """The shipped demo spec with its tournament (the fixture's copy drops it), cut to two
    rounds: enough to show a round decided from the verdicts of the one before it."""
    from tests.support.demo import REPO_DATA

    spec = root / "cohorts" / "demo" / "spec" / "config.yaml"
    shipped = (REPO_DATA / "cohorts" / "demo" / "spec" / "config.yaml").read_text()
    assert "  rounds: 3\n" in shipped
    spec.write_text(shipped.replace("  rounds: 3\n", "  rounds: 2\n"))


@pytest.mark.slow
def test_sensor_plays_a_tournament_round_by_round(demo_root: Path, instance: DagsterInstance,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYDREAMING_AUTO_RUN", "1")
    _tournament_demo(demo_root)
    cursor = None
    launched = []
    for _ in range(30):
        result = _tick(instance, demo_root, cursor)
        cursor = result.cursor
        if not result.run_requests:
            break
        for request in result.run_requests:
            assert _launch(instance, demo_root, request)
        launched += [r for r in result.run_requests if STAGE_TAG in r.tags]
    else:
        raise AssertionError("sensor kept requesting runs")
    comparison_rounds = sorted(int(r.tags[ROUND_TAG]) for r in launched if r.tags[STAGE_TAG] == "comparison")
    assert comparison_rounds == [2, 3]  # round 1 runs the essays; each later round adds one Swiss round
    # Later rounds launch only comparisons: the finished stages are not run again.
    assert {r.tags[STAGE_TAG] for r in launched if r.tags[ROUND_TAG] != "1"} == {"comparison"}
    rows = load_membership(demo_root, "demo").comparisons
    layer = GensDataLayer.from_root(demo_root)
    assert len(rows) == 32 and all(layer.parsed_path("comparison", r.gen_id).is_file() for r in rows)


@pytest.mark.slow
def test_launch_plays_a_tournament_round_by_round(demo_root: Path) -> None:
    from daydreaming_dagster import app

    _tournament_demo(demo_root)
    runs = list(app.launch(str(demo_root), "demo", parallel=2))
    assert all(r.success for r in runs), [r.error for r in runs if not r.success]
    assert sorted(r.round for r in runs if r.stage == "comparison") == [2, 3]
    rows = load_membership(demo_root, "demo").comparisons
    layer = GensDataLayer.from_root(demo_root)
    assert len(rows) == 32 and all(layer.parsed_path("comparison", r.gen_id).is_file() for r in rows)
