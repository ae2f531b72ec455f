"""The cohort automation sensor on a real temporary instance, and what a template edit re-runs.

The sensor's run requests are executed here the way the daemon would (same job selection and
tags) with ``materialize``; generation stages use the offline provider.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunRequest, SensorResult, build_sensor_context, materialize

from daydreaming_dagster.assets.cohort import COHORT_ASSETS
from daydreaming_dagster.assets.generation import GENERATION_ASSETS
from daydreaming_dagster.automation import (
    AUTORUN_TAG,
    STAGE_JOBS,
    AutomationCursor,
    cohort_automation_sensor,
    cohort_job,
    evaluate_automation,
    stage_run_ranges,
)
from daydreaming_dagster.cohorts import build_cohort, read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.definitions import build_resources
from daydreaming_dagster.failures import RANGE_END_TAG, RANGE_START_TAG, STAGE_TAG
from daydreaming_dagster.fingerprints import affected_generations
from daydreaming_dagster.orchestration import register_keys, run_stage
from daydreaming_dagster.resources import DataRootResource
from daydreaming_dagster.types import STAGES

EDITED = ("evaluation", "eval-rubric")


@pytest.fixture
def instance() -> DagsterInstance:
    # A real (SQLite) instance in the per-test DAGSTER_HOME set by tests/conftest.py.
    with DagsterInstance.get() as inst:
        yield inst


def _tick(instance: DagsterInstance, root: Path, cursor: str | None, caplog=None) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"data_root": DataRootResource(root=str(root))})
    result = cohort_automation_sensor(context)
    assert isinstance(result, SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _launch(instance: DagsterInstance, root: Path, request: RunRequest) -> bool:
    """Execute a run request as the daemon would: the job's assets, its partition or range tags."""
    if request.job_name == cohort_job.name:
        selection, assets = [a.key for a in COHORT_ASSETS], COHORT_ASSETS
    else:
        stage = request.tags[STAGE_TAG]
        assert request.job_name == STAGE_JOBS[stage].name
        selection, assets = [f"{stage}_{p}" for p in ("prompt", "raw", "parsed")], GENERATION_ASSETS
    result = materialize(assets, selection=selection, instance=instance, resources=build_resources(str(root)),
                         partition_key=request.partition_key, tags=request.tags, raise_on_error=False)
    return result.success


def _drain(instance: DagsterInstance, root: Path, cursor: str | None) -> tuple[str, list[RunRequest]]:
    """Tick and launch until the sensor asks for nothing more; return the cursor and every request."""
    launched: list[RunRequest] = []
    for _ in range(10):
        result = _tick(instance, root, cursor)
        cursor = result.cursor
        if not result.run_requests:
            return cursor, launched
        for request in result.run_requests:
            assert _launch(instance, root, request)
        launched += result.run_requests
    raise AssertionError("sensor kept requesting runs")


class _Recorder:
    """Collects the sensor's log lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in (root / "gens").rglob("*") if p.is_file()}


def test_sensor_builds_new_cohort_and_auto_runs_its_stages(demo_root: Path, instance: DagsterInstance,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYDREAMING_AUTO_RUN", "1")
    monkeypatch.setenv("DAYDREAMING_RUN_CHUNK", "5")
    first = _tick(instance, demo_root, None)
    assert instance.get_dynamic_partitions("cohorts") == ["demo"]
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [("cohort_job", "demo")]
    assert _launch(instance, demo_root, first.run_requests[0])
    members = read_membership(str(demo_root), "demo")
    assert instance.get_dynamic_partitions("evaluation_gens") == list(members["evaluation"])

    cursor, launched = _drain(instance, demo_root, first.cursor)
    by_stage = {s: [r for r in launched if r.tags.get(STAGE_TAG) == s] for s in STAGES}
    # 8 drafts, 16 essays, 32 evaluations in chunks of at most 5 keys: 2, 4 and 7 runs.
    assert {s: len(rs) for s, rs in by_stage.items()} == {"draft": 2, "essay": 4, "evaluation": 7, "comparison": 0}
    assert [r.tags[STAGE_TAG] for r in launched] == ["draft"] * 2 + ["essay"] * 4 + ["evaluation"] * 7
    evaluation_keys = instance.get_dynamic_partitions("evaluation_gens")
    covered = []
    for request in by_stage["evaluation"]:
        start, end = evaluation_keys.index(request.tags[RANGE_START_TAG]), evaluation_keys.index(request.tags[RANGE_END_TAG])
        covered += evaluation_keys[start:end + 1]
        assert request.tags["daydream/provider"] == "offline"
    assert covered == list(members["evaluation"])
    layer = GensDataLayer.from_root(demo_root)
    assert all(layer.parsed_exists(s, g) for s in STAGES for g in members[s])
    assert AutomationCursor.load(cursor).pending == {}

    # Touching files without changing them requests nothing (content fingerprints, not mtimes).
    template = demo_root / "1_raw" / "templates" / "evaluation" / "eval-rubric.txt"
    template.write_text(template.read_text())
    os.utime(demo_root / "cohorts" / "demo" / "spec" / "config.yaml")
    assert _tick(instance, demo_root, cursor).run_requests == []


def test_sensor_rebuilds_on_template_edit_and_reruns_only_what_it_renders(
    demo_root: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYDREAMING_AUTO_RUN", "1")
    result = _tick(instance, demo_root, None)
    assert _launch(instance, demo_root, result.run_requests[0])
    cursor, _ = _drain(instance, demo_root, result.cursor)
    before = _files(demo_root)
    members = read_membership(str(demo_root), "demo")
    layer = GensDataLayer.from_root(demo_root)
    run_ids_before = {g: layer.read_raw_metadata("evaluation", g)["run_id"] for g in members["evaluation"]}

    time.sleep(0.01)
    stage, template_id = EDITED
    path = demo_root / "1_raw" / "templates" / stage / f"{template_id}.txt"
    path.write_text(path.read_text() + "\nBe strict.\n")
    impact = affected_generations(demo_root, stage, template_id)
    rubric = [g for g in members["evaluation"] if layer.read_main_metadata("evaluation", g)["template_id"] == template_id]
    assert impact == {"draft": [], "essay": [], "evaluation": sorted(rubric), "comparison": []} and len(rubric) == 16

    log = _Recorder()
    edited = evaluate_automation(instance, str(demo_root), cursor, auto_run=True, log=log)
    assert [(r.job_name, r.partition_key) for r in edited.run_requests] == [("cohort_job", "demo")]
    assert any("template evaluation/eval-rubric changed; affected generations: 16 evaluation" in m for m in log.lines)
    assert _launch(instance, demo_root, edited.run_requests[0])
    _, launched = _drain(instance, demo_root, edited.cursor)
    assert len({r.tags[AUTORUN_TAG] for r in launched}) == 3  # every stage ran again (and reused)

    after = _files(demo_root)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed and all(name.split("/")[2] in rubric for name in changed)
    assert {name.split("/")[2] for name in changed} == set(rubric)
    for gen_id in members["evaluation"]:
        new_run = layer.read_raw_metadata("evaluation", gen_id)["run_id"] != run_ids_before[gen_id]
        assert new_run == (gen_id in rubric)


def test_template_edit_invalidates_exactly_the_generations_it_renders(demo_root: Path, instance: DagsterInstance) -> None:
    """Through orchestration.run_stage (the CLI's path): only evaluations rendered from the
    edited template call the model again; no other generation's files change."""
    root = str(demo_root)
    build_cohort(root, "demo")
    members = read_membership(root, "demo")
    resources = build_resources(root)

    def run_all() -> dict[str, list[str]]:
        run_ids = {}
        for stage in STAGES:
            register_keys(instance, stage, members[stage])
            outcome = run_stage(instance, GENERATION_ASSETS, stage, members[stage], resources)
            assert outcome.success
            run_ids[stage] = outcome.run_ids
        return run_ids

    run_all()
    layer = GensDataLayer.from_root(demo_root)
    before = _files(demo_root)
    calls_before = {(s, g): layer.read_raw_metadata(s, g)["run_id"] for s in STAGES for g in members[s]}
    time.sleep(0.01)
    path = demo_root / "1_raw" / "templates" / "evaluation" / "eval-overall.txt"
    path.write_text(path.read_text().replace("score", "overall score", 1))
    expected = affected_generations(demo_root, "evaluation", "eval-overall", members)["evaluation"]
    assert len(expected) == 16

    second = run_all()
    recalled = {key for key, run_id in calls_before.items() if layer.read_raw_metadata(*key)["run_id"] != run_id}
    assert recalled == {("evaluation", g) for g in expected}
    assert {layer.read_raw_metadata("evaluation", g)["run_id"] for g in expected} <= set(second["evaluation"])
    after = _files(demo_root)
    changed_dirs = {name.split("/")[2] for name in after if before.get(name) != after[name]}
    assert changed_dirs == set(expected)
    for gen_id in expected:
        assert json.loads((demo_root / "gens" / "evaluation" / gen_id / "raw_metadata.json").read_text())["reused"] is False


def test_stage_run_ranges_split_contiguous_segments() -> None:
    keys = [f"k{i}" for i in range(10)]
    assert stage_run_ranges(keys, ["k1", "k2", "k3", "k7", "k8"], chunk=2) == [["k1", "k2"], ["k3"], ["k7", "k8"]]
    assert stage_run_ranges(keys, keys, chunk=0) == [keys]
