"""Launch Dagster runs for a cohort: few runs, many partitions each (DESIGN §8).

A cohort's gen ids are registered in membership order, so they usually form one contiguous
range of their stage's dynamic partitions; each contiguous segment becomes one Dagster run
(``BackfillPolicy.single_run()`` assets see the whole range in ``context.partition_keys``).
When a step fails because some generations failed, the phases after it run again over the same
range, so the generations that succeeded still go all the way through.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, materialize

from .dagster_settings import apply_dagster_event_settings
from .partitions import partitions_name
from .stages.batch import stop_requested
from .types import PHASES, Phase, Stage

apply_dagster_event_settings()

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
DEFAULT_DAGSTER_HOME = ".dagster_home"


def get_instance() -> DagsterInstance:
    """The Dagster instance under ``DAGSTER_HOME`` (default: ``./.dagster_home``, created)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(DEFAULT_DAGSTER_HOME).resolve())
        os.environ["DAGSTER_HOME"] = home
    home_path = Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    config = home_path / "dagster.yaml"
    if not config.exists():
        # An explicit (default: SQLite under DAGSTER_HOME) config silences Dagster's first-run
        # banners; telemetry stays off for an offline research tool.
        config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return DagsterInstance.get()


def register_keys(instance: DagsterInstance, stage: Stage, gen_ids: Sequence[str]) -> int:
    """Add-only registration of gen ids, in the given order; returns how many were new."""
    name = partitions_name(stage)
    existing = set(instance.get_dynamic_partitions(name))
    new = [g for g in dict.fromkeys(gen_ids) if g not in existing]
    if new:
        instance.add_dynamic_partitions(name, new)
    return len(new)


def contiguous_segments(all_keys: Sequence[str], wanted: Iterable[str]) -> list[list[str]]:
    """Split ``wanted`` into runs of keys adjacent in ``all_keys`` (the partition order).

    Raises ``ValueError`` naming a key that is not registered.
    """
    position = {key: index for index, key in enumerate(all_keys)}
    indices = []
    for key in dict.fromkeys(wanted):
        if key not in position:
            raise ValueError(f"gen id {key!r} is not a registered partition; register the cohort first")
        indices.append(position[key])
    indices.sort()
    segments: list[list[str]] = []
    for index in indices:
        if segments and position[segments[-1][-1]] == index - 1:
            segments[-1].append(all_keys[index])
        else:
            segments.append([all_keys[index]])
    return segments


@dataclass
class StageRun:
    """What the runs of one stage did."""

    stage: Stage
    run_ids: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    success: bool = True


def run_stage(
    instance: DagsterInstance,
    assets: Sequence[Any],
    stage: Stage,
    gen_ids: Sequence[str],
    resources: dict[str, Any],
    *,
    phases: Sequence[Phase] = PHASES,
    tags: dict[str, str] | None = None,
    log_level: str = "CRITICAL",
) -> StageRun:
    """Materialise ``phases`` of ``stage`` for ``gen_ids`` in as few runs as possible."""
    outcome = StageRun(stage=stage)
    if not gen_ids:
        return outcome
    all_keys = instance.get_dynamic_partitions(partitions_name(stage))
    for segment in contiguous_segments(all_keys, gen_ids):
        remaining = [p for p in PHASES if p in phases]
        while remaining:
            selection = [f"{stage}_{phase}" for phase in remaining]
            run_tags = {**(tags or {}), "daydream/stage": stage,
                        RANGE_START_TAG: segment[0], RANGE_END_TAG: segment[-1]}
            result = materialize(
                assets, selection=selection, instance=instance, resources=resources,
                tags=run_tags, raise_on_error=False, run_config=quiet_run_config(log_level),
            )
            outcome.run_ids.append(result.run_id)
            if result.success:
                break
            outcome.success = False
            if stop_requested():
                break  # Ctrl-C: launch nothing more; a re-run resumes
            failed = _failed_phase(result, stage, remaining)
            if failed is None:
                break  # not a generation failure (e.g. resource error): nothing later can help
            outcome.failed_steps.append(f"{stage}_{failed}")
            remaining = remaining[remaining.index(failed) + 1:]
    return outcome


def quiet_run_config(log_level: str = "CRITICAL") -> dict[str, Any]:
    """Run config that keeps Dagster's console logger to ``log_level``: the CLI draws its own
    progress and prints one line per failure summary, so step tracebacks would only bury it;
    the event log in the instance (and the Dagster UI) keeps everything."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def _failed_phase(result: Any, stage: Stage, phases: list[Phase]) -> Phase | None:
    failed_keys = {event.step_key for event in result.get_step_failure_events()}
    for phase in phases:
        if f"{stage}_{phase}" in failed_keys:
            return phase
    return None

