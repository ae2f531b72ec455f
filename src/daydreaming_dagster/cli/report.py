"""``daydream report COHORT``: (re)build a cohort's report from what is on disk, no model calls."""

from __future__ import annotations

import click

from .. import app
from ._common import data_root_option, resolve_data_root
from .view import echo_explorer_hint


@click.command("report")
@click.argument("cohort_id")
@click.option(
    "--top-n",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="How many top essays to copy into the results folder and list.",
)
@data_root_option
def report(cohort_id: str, top_n: int, data_root: str | None) -> None:
    """Build COHORT's report (Markdown + HTML, CSV tables, score plot, top essays).

    Prints the report paths on stdout and a short summary on stderr. Generations that
    failed or have not run yet are reported as such; an unknown cohort exits 2.
    """
    root = resolve_data_root(data_root)
    built = app.report(root, cohort_id, top_n=top_n)
    summary = built.stage_summary
    counts = ", ".join(
        f"{row['stage']} {row['ok']}/{row['members']} ok" for row in summary.iter_rows(named=True)
    )
    click.echo(
        f"cohort {cohort_id}: {counts}; {built.n_scored} of {built.n_evaluations} evaluations scored",
        err=True,
    )
    click.echo(f"report: {built.report_md}")
    click.echo(f"html:   {built.report_html}")
    click.echo(f"plot:   {built.plot_png}")
    if built.analysis_files:
        click.echo(f"analysis: {built.analysis_files['summary'].parent}")
    echo_explorer_hint(cohort_id)
