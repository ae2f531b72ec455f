"""``daydream launch COHORT``: run a cohort as several Dagster runs at once, on the executor the
definitions use (``DAYDREAMING_EXECUTOR=celery`` sends the steps to celery workers).

Each stage's gen ids are cut into contiguous key ranges (``--split N`` runs per stage, or
``--chunk K`` keys per run); up to ``--parallel`` runs execute at once, each in its own
run-coordinator process, so workers share a stage. Stages run in order. Finished generations
are reused, so launching again after a failure pays only for what is missing.
"""

from __future__ import annotations

import math
import os
import sys

import click

from ..types import STAGES, Stage
from ._common import data_root_option, resolve_data_root


@click.command("launch")
@click.argument("cohort_id")
@click.option("--stage", "stages", type=click.Choice(list(STAGES)), multiple=True,
              help="Run only these stages (repeatable; default: all, in order).")
@click.option("--split", type=click.IntRange(1), default=None, help="Runs per stage (contiguous key ranges).")
@click.option("--chunk", type=click.IntRange(1), default=None, help="Keys per run (instead of --split).")
@click.option("--parallel", type=click.IntRange(1), default=2, show_default=True, help="Runs executing at once.")
@click.option("--no-build", is_flag=True,
              help="Use the cohort as already built (membership.csv and metadata seeds present).")
@click.option("--offline", is_flag=True,
              help="Serve models without a key by the offline provider (SYNTHETIC text); also $DAYDREAMING_OFFLINE=1.")
@data_root_option
def launch(cohort_id: str, stages: tuple[str, ...], split: int | None, chunk: int | None, parallel: int,
           no_build: bool, offline: bool, data_root: str | None) -> None:
    """Build COHORT, register its partitions and run its stages as parallel range runs.

    Exits 1 when a run failed (then `daydream retry-failed COHORT` or launching again finishes
    the rest without paying twice).
    """
    from ..automation import (
        ensure_pool_limit,
        launch_stage_ranges,
        stage_providers,
        stage_run_ranges,
    )
    from ..cohorts import build_cohort, read_membership
    from ..failures import COHORT_TAG, PROVIDER_TAG
    from ..llm.routes import OFFLINE_ENV
    from ..orchestration import get_instance, register_keys
    from ..partitions import partitions_name
    from ..preflight import PREFLIGHT_PASSED, PREFLIGHT_TAG, cohort_preflight, preflight

    root = resolve_data_root(data_root)
    selected: list[Stage] = [s for s in STAGES if not stages or s in stages]
    if offline:
        os.environ[OFFLINE_ENV] = "1"  # the run processes inherit the opt-in
    if no_build:  # the seeded metadata says what each generation needs
        members = read_membership(root, cohort_id)
        checked = cohort_preflight(root, {s: members[s] for s in selected})
    else:
        rows = build_cohort(root, cohort_id).membership.all_rows()
        checked = preflight(root, [r for r in rows if r.stage in selected])
        members = read_membership(root, cohort_id)
    checked.raise_for_problems(f"cohort {cohort_id}")
    instance = get_instance()
    for stage in STAGES:
        register_keys(instance, stage, members[stage])
    ensure_pool_limit(instance)
    # The run processes must find the same data root and instance.
    env = {**os.environ, "DAYDREAMING_DATA_ROOT": root, "DAGSTER_HOME": os.environ["DAGSTER_HOME"]}
    any_failed = False
    for stage in selected:
        ids = members[stage]
        if not ids:
            continue
        size = chunk or (math.ceil(len(ids) / split) if split else 0)
        ranges = stage_run_ranges(instance.get_dynamic_partitions(partitions_name(stage)), ids, size)
        tags = {COHORT_TAG: cohort_id, PROVIDER_TAG: stage_providers(root, stage, ids),
                PREFLIGHT_TAG: PREFLIGHT_PASSED}
        outcomes = launch_stage_ranges(stage, ranges, tags, parallel=parallel, env=env)
        for run in outcomes:
            state = "ok" if run.success else "FAILED"
            click.echo(f"{stage:<11} {run.first}..{run.last}  run {run.run_id}  {state}")
            if run.error:
                click.echo(f"  {run.error}", err=True)
        any_failed = any_failed or not all(r.success for r in outcomes)
    if any_failed:
        click.echo(f"some runs failed; `daydream retry-failed {cohort_id}` or launching again finishes the rest",
                   err=True)
        sys.exit(1)
