"""Cohort assets against a real (ephemeral) Dagster instance: build, frames, partition
registration order, add-only behaviour, pruning and cohort discovery."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from daydreaming_dagster.assets.cohort import (
    COHORT_ASSETS,
    prune_dynamic_partitions,
    prune_partitions_job,
    sync_cohort_partitions,
)
from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.environments import io_managers_for_environment
from daydreaming_dagster.resources import DataRootResource


def _resources(root) -> dict:
    """The data root plus the dev storage (JSON files + DuckDB) under it."""
    return {"data_root": DataRootResource(root=str(root)), **io_managers_for_environment("dev", data_root=str(root))}

STAGE_PARTITIONS = {"draft": "draft_gens", "essay": "essay_gens", "evaluation": "evaluation_gens", "comparison": "comparison_gens"}




@pytest.fixture
def instance() -> DagsterInstance:
    return DagsterInstance.ephemeral()


def add_second_cohort(root: Path) -> None:
    """A cohort sharing the demo's first draft (and its copy essay), plus new evaluations."""
    spec = root / "cohorts" / "second" / "spec"
    spec.mkdir(parents=True)
    (spec / "config.yaml").write_text(
        """
combos:
  one: {sets: [[tide-pools, error-correcting-codes], [origami, weather-forecasting]], level: paragraph}
axes:
  draft_template: [links-ideas]
  draft_llm: [offline]
  essay_template: [essay-copy]
  evaluation_template: [eval-rubric]
  evaluation_llm: [offline]
  evaluation_template_replicate: [1, 2]
"""
    )


def run_cohort(instance: DagsterInstance, root: Path, cohort: str):
    result = materialize(
        COHORT_ASSETS,
        partition_key=cohort,
        instance=instance,
        resources=_resources(root),
    )
    assert result.success
    return result


def test_materialize_demo_registers_partitions_in_membership_order(instance: DagsterInstance, demo_root: Path) -> None:
    assert sync_cohort_partitions(instance, str(demo_root)) == ["demo"]
    assert sync_cohort_partitions(instance, str(demo_root)) == []
    result = run_cohort(instance, demo_root, "demo")

    manifest = result.output_for_node("cohort_id")
    assert manifest["cohort_id"] == "demo" and manifest["counts"] == {"draft": 8, "essay": 16, "evaluation": 32, "comparison": 0}
    frame = result.output_for_node("cohort_membership")
    assert isinstance(frame, pl.DataFrame) and frame.height == 56
    assert set(frame["cohort_id"].to_list()) == {"demo"}
    assert frame.filter(pl.col("mode") == "copy").height == 8
    combos = result.output_for_node("content_combinations")
    assert len(combos) == 4
    first = next(iter(combos.values()))
    assert first["description_level"] == "paragraph" and len(first["concepts"]) == 2
    assert set(first["concepts"][0]) == {"concept_id", "name", "content"}
    assert result.output_for_node("register_cohort_partitions") == {"draft": 8, "essay": 16, "evaluation": 32, "comparison": 0}

    members = read_membership(demo_root, "demo")
    for stage, name in STAGE_PARTITIONS.items():
        assert instance.get_dynamic_partitions(name) == members[stage]
    materialized = result.get_asset_materialization_events()
    assert {e.materialization.partition for e in materialized} == {"demo"}


def test_registration_is_add_only_and_a_cohorts_new_keys_are_contiguous(instance: DagsterInstance, demo_root: Path) -> None:
    add_second_cohort(demo_root)
    sync_cohort_partitions(instance, str(demo_root))
    run_cohort(instance, demo_root, "demo")
    demo_keys = {name: instance.get_dynamic_partitions(name) for name in STAGE_PARTITIONS.values()}

    result = run_cohort(instance, demo_root, "second")
    added = result.output_for_node("register_cohort_partitions")
    second = read_membership(demo_root, "second")
    # One draft, its copy essay and that essay's first rubric evaluation are shared with demo;
    # they keep their place.
    assert added == {"draft": 1, "essay": 1, "evaluation": 3, "comparison": 0}
    for stage, name in STAGE_PARTITIONS.items():
        keys = instance.get_dynamic_partitions(name)
        assert keys[: len(demo_keys[name])] == demo_keys[name]
        new = [k for k in second[stage] if k not in demo_keys[name]]
        assert keys[len(demo_keys[name]) :] == new  # appended contiguously, in membership order
    shared_draft = second["draft"][0]
    assert shared_draft in demo_keys["draft_gens"]

    # Materializing again adds nothing and keeps the order.
    snapshot = {name: instance.get_dynamic_partitions(name) for name in STAGE_PARTITIONS.values()}
    again = run_cohort(instance, demo_root, "second")
    assert again.output_for_node("register_cohort_partitions") == {"draft": 0, "essay": 0, "evaluation": 0, "comparison": 0}
    assert {name: instance.get_dynamic_partitions(name) for name in STAGE_PARTITIONS.values()} == snapshot


def test_prune_removes_keys_no_cohort_lists(instance: DagsterInstance, demo_root: Path) -> None:
    add_second_cohort(demo_root)
    sync_cohort_partitions(instance, str(demo_root))
    run_cohort(instance, demo_root, "demo")
    run_cohort(instance, demo_root, "second")
    second = read_membership(demo_root, "second")
    demo = read_membership(demo_root, "demo")
    exclusive = {s: [k for k in second[s] if k not in demo[s]] for s in STAGE_PARTITIONS}
    before = {name: instance.get_dynamic_partitions(name) for name in [*STAGE_PARTITIONS.values(), "cohorts"]}

    shutil.rmtree(demo_root / "cohorts" / "second")
    dry = prune_dynamic_partitions(instance, str(demo_root), dry_run=True)
    assert dry == {
        "draft_gens": exclusive["draft"],
        "essay_gens": exclusive["essay"],
        "evaluation_gens": exclusive["evaluation"],
        "comparison_gens": exclusive["comparison"],
        "cohorts": ["second"],
    }
    assert {name: instance.get_dynamic_partitions(name) for name in before} == before

    result = prune_partitions_job.execute_in_process(
        instance=instance,
        resources=_resources(demo_root),
        run_config={"ops": {"prune_partitions": {"config": {"dry_run": False}}}},
    )
    assert result.success and result.output_for_node("prune_partitions") == dry
    for stage, name in STAGE_PARTITIONS.items():
        assert instance.get_dynamic_partitions(name) == demo[stage]
    assert instance.get_dynamic_partitions("cohorts") == ["demo"]
    # Nothing on disk was removed: pruning only forgets partition keys.
    assert all((demo_root / "gens" / s / k).is_dir() for s, keys in exclusive.items() for k in keys)


def test_failed_build_fails_the_asset_with_the_spec_error(instance: DagsterInstance, demo_root: Path) -> None:
    spec = demo_root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text().replace("evaluation_llm: [offline]", "evaluation_llm: [offline, missing-model]"))
    sync_cohort_partitions(instance, str(demo_root))
    result = materialize(
        COHORT_ASSETS,
        partition_key="demo",
        instance=instance,
        resources=_resources(demo_root),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "unknown model(s): missing-model" in failure.event_specific_data.error.to_string()
    assert instance.get_dynamic_partitions("draft_gens") == []
