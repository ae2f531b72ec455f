"""The run-failure sensor lists a failed run's unfinished generations (error, raw_failure.log)."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

from daydreaming_dagster.assets.generation import GENERATION_ASSETS
from daydreaming_dagster.automation import generation_failure_sensor
from daydreaming_dagster.cohorts import build_cohort, read_membership
from daydreaming_dagster.definitions import build_resources
from daydreaming_dagster.failures import failure_report_path, run_gen_ids
from daydreaming_dagster.orchestration import register_keys, run_stage
from daydreaming_dagster.resources import DataRootResource, StageSettingsResource


def test_failure_sensor_writes_failed_gen_ids_with_errors_and_logs(demo_root: Path) -> None:
    root = str(demo_root)
    build_cohort(root, "demo")
    drafts = read_membership(root, "demo")["draft"]
    with DagsterInstance.get() as instance:
        register_keys(instance, "draft", drafts)
        # Offline drafts have fewer than 1000 lines: every draft is rejected (and kept) in raw.
        resources = build_resources(root, stage_settings=StageSettingsResource(draft_min_lines=1000))
        outcome = run_stage(instance, GENERATION_ASSETS, "draft", drafts, resources, phases=["prompt", "raw"],
                            tags={"daydream/cohort": "demo"})
        assert not outcome.success
        run = instance.get_run_by_id(outcome.run_ids[-1])
        assert run_gen_ids(run.tags, instance.get_dynamic_partitions("draft_gens")) == drafts
        failure = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)[0].dagster_event
        context = build_run_status_sensor_context(
            sensor_name=generation_failure_sensor.name, dagster_event=failure, dagster_instance=instance,
            dagster_run=run, resources={"data_root": DataRootResource(root=root)},
        ).for_run_failure()
        generation_failure_sensor(context)

    path = failure_report_path(root, "demo", run.run_id)
    assert path == demo_root / "cohorts" / "demo" / "reports" / f"failures_{run.run_id}.json"
    report = json.loads(path.read_text())
    assert report["stage"] == "draft" and report["cohort_id"] == "demo" and report["failed_count"] == 8
    assert [item["gen_id"] for item in report["failed"]] == drafts
    for item in report["failed"]:
        assert item["phase"] == "raw" and item["reason"] == "min_lines"
        assert "fewer than the required 1000" in item["error"]
        log = Path(item["raw_failure_log"])
        assert log == demo_root / "gens" / "draft" / item["gen_id"] / "raw_failure.log"
        assert f"run_id={run.run_id} reason=min_lines" in log.read_text()
