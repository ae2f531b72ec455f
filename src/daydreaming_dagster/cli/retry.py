"""``daydream retry-failed COHORT``: re-run only the generations that failed.

The failed generations come from the gens store (:func:`~..failures.retry_targets`, built on
``stages/status.py``), plus the unfinished descendants that never ran because their parent
failed. They go through the same Dagster runs as ``daydream run`` (``orchestration.run_stage``),
so non-contiguous gen ids become several contiguous range runs; finished generations are never
selected, so nothing finished is paid for again.
"""

from __future__ import annotations

import sys

import click

from .. import app
from ..types import STAGES, Stage
from ._common import data_root_option, resolve_data_root

STAGE_CHOICE = click.Choice(list(STAGES))
RETRY_TAG = app.RETRY_TAG


@click.command("retry-failed")
@click.argument("cohort_id")
@click.option("--stage", "stages", type=STAGE_CHOICE, multiple=True,
              help="Retry only these stages (repeatable; default: all, in order).")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=None,
              help="Model calls in flight at once (default: $DAYDREAMING_LLM_CONCURRENCY or 16).")
@click.option("--min-lines", type=click.IntRange(0), default=3, show_default=True,
              help="Minimum non-empty lines of a draft's raw output.")
@click.option("--dry-run", is_flag=True, help="List what would be retried; run nothing.")
@click.option("--offline", is_flag=True,
              help="Serve models without a key by the offline provider (SYNTHETIC text, recorded as such), "
                   "as `daydream run --offline` does.")
@data_root_option
def retry_failed(cohort_id: str, stages: tuple[str, ...], concurrency: int | None, min_lines: int,
                 dry_run: bool, offline: bool, data_root: str | None) -> None:
    """Re-run COHORT's failed generations (and what waits on them), nothing else.

    Exits 0 when every retried generation finished, 1 when some still fail (see
    `daydream status COHORT`).
    """
    root = resolve_data_root(data_root)
    selected: list[Stage] = [s for s in STAGES if not stages or s in stages]
    targets = app.retry_targets(root, cohort_id, selected)
    total = sum(len(ids) for ids in targets.values())
    for stage in selected:
        click.echo(f"{stage:<11} {len(targets[stage])} to retry", err=True)
    if dry_run or total == 0:
        if total == 0:
            click.echo(f"cohort {cohort_id}: nothing failed", err=True)
        for stage in selected:
            for gen_id in targets[stage]:
                click.echo(f"{stage}\t{gen_id}")
        return
    still_failing = 0
    for outcome in app.retry_failed(root, cohort_id, targets, concurrency=concurrency, min_lines=min_lines,
                                     offline=offline):
        ids, left = outcome.retried, outcome.still_failing
        still_failing += len(left)
        click.echo(f"{outcome.stage:<11} retried {len(ids)}: {len(ids) - len(left)} finished, {len(left)} still "
                   f"failing ({len(outcome.run_ids)} run(s))", err=True)
        for failure in left[:20]:
            click.echo(f"  {failure.gen_id} [{failure.phase}] {failure.error}", err=True)
    if still_failing:
        click.echo(f"{still_failing} generation(s) still fail; see `daydream status {cohort_id}`", err=True)
        sys.exit(1)
