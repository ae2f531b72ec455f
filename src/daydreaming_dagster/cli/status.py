"""``daydream status COHORT`` and ``daydream estimate COHORT``."""

from __future__ import annotations

import click

from .. import app
from ..types import STAGES
from ._common import data_root_option, resolve_data_root


@click.command("status")
@click.argument("cohort_id")
@click.option("--failures", "max_failures", type=int, default=20, show_default=True,
              help="How many failures to list per stage.")
@data_root_option
def status(cohort_id: str, max_failures: int, data_root: str | None) -> None:
    """Counts per stage and phase for COHORT, and its failures with their error."""
    from rich.console import Console
    from rich.table import Table

    root = resolve_data_root(data_root)
    statuses = app.status(root, cohort_id)
    table = Table(title=f"cohort {cohort_id}")
    for column in ("stage", "total", "prompt", "raw ok", "raw failed", "parsed ok", "parsed failed", "cost $"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in STAGES:
        c = statuses[stage].counts()
        table.add_row(stage, *(str(c[k]) for k in ("total", "prompt", "raw_ok", "raw_failed", "parsed_ok", "parsed_failed")),
                      f"{statuses[stage].cost_usd:.4f}")
    console = Console(width=160)
    console.print(table)
    for line in app.spending_status(root, cohort_id):
        console.print(line, markup=False, highlight=False)
    for stage in STAGES:
        busy = statuses[stage].in_progress
        if busy:
            console.print(f"[bold]{stage} in progress ({len(busy)})[/bold]")
            for state in busy[:max_failures]:
                console.print(f"  {state.gen_id}: claimed by {state.claimed_by}", markup=False, highlight=False)
        failures = statuses[stage].failures
        if not failures:
            continue
        console.print(f"[bold]{stage} failures ({len(failures)})[/bold]")
        for state in failures[:max_failures]:
            console.print(f"  {state.gen_id}: {state.error}" + (f"  (log: {state.failure_log})" if state.failure_log else ""),
                          markup=False, highlight=False)
        if len(failures) > max_failures:
            console.print(f"  ... and {len(failures) - max_failures} more")


@click.command("estimate")
@click.argument("cohort_id")
@click.option("--prompt-tokens", type=int, default=None, help="Assumed prompt tokens per call (default: per stage).")
@click.option("--completion-tokens", type=int, default=None, help="Assumed completion tokens per call (default: per stage).")
@data_root_option
def estimate(cohort_id: str, prompt_tokens: int | None, completion_tokens: int | None, data_root: str | None) -> None:
    """Model calls per stage and a cost estimate from the price table, before anything runs.

    Compiles the spec in memory only: nothing is written.
    """
    root = resolve_data_root(data_root)
    result = app.estimate(root, cohort_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    click.echo(result.render())
