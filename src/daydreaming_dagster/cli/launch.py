"""``daydream launch COHORT``: run a cohort as several Dagster runs at once, on the executor the
definitions use (``DAYDREAMING_EXECUTOR=celery`` sends the steps to celery workers).

Each stage's gen ids are cut into contiguous key ranges (``--split N`` runs per stage, or
``--chunk K`` keys per run); up to ``--parallel`` runs execute at once, each in its own
run-coordinator process, so workers share a stage. Stages run in order. Finished generations
are reused, so launching again after a failure pays only for what is missing. A cohort with a
gate or adaptive evaluation goes round by round (docs/adaptive.md): each round launches what its
decisions add, once the previous round's runs have finished.
"""

from __future__ import annotations

import sys

import click

from .. import app
from ..types import STAGES
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
    root = resolve_data_root(data_root)
    any_failed = False
    for run in app.launch(root, cohort_id, stages=[s for s in STAGES if not stages or s in stages], split=split,
                          chunk=chunk, parallel=parallel, build_first=not no_build, offline=offline):
        state = "ok" if run.success else "FAILED"
        round_label = f"  (round {run.round})" if run.round > 1 else ""
        click.echo(f"{run.stage:<11} {run.first}..{run.last}  run {run.run_id}  {state}{round_label}")
        if run.error:
            click.echo(f"  {run.error}", err=True)
        any_failed = any_failed or not run.success
    if any_failed:
        click.echo(f"some runs failed; `daydream retry-failed {cohort_id}` or launching again finishes the rest",
                   err=True)
        sys.exit(1)
