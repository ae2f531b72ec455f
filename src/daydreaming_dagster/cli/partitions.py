"""``daydream partitions prune``: drop dynamic partition keys that no cohort lists any more."""

from __future__ import annotations

import click

from .. import app
from ._common import data_root_option, resolve_data_root

_LISTED_KEYS = 20


@click.group("partitions")
def partitions() -> None:
    """Maintain the Dagster dynamic partitions (gen ids per stage, cohort ids)."""


@partitions.command("prune")
@click.option("--dry-run", is_flag=True, help="Only list the keys that would be removed.")
@click.option(
    "--all-keys",
    "list_all",
    is_flag=True,
    help=f"List every key, not only the first {_LISTED_KEYS} per set.",
)
@data_root_option
def prune(dry_run: bool, list_all: bool, data_root: str | None) -> None:
    """Remove partition keys that no cohort's membership.csv lists (cohort keys whose spec is gone).

    Works on the Dagster instance under DAGSTER_HOME (default ./.dagster_home), the one
    `daydream run` uses. Files under gens/ are never touched; a pruned key comes back when
    its cohort is run again.
    """
    root = resolve_data_root(data_root)
    stale = app.prune_partitions(root, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for name, keys in stale.items():
        click.echo(f"{name}: {verb} {len(keys)} key(s)")
        shown = keys if list_all else keys[:_LISTED_KEYS]
        for key in shown:
            click.echo(f"  {key}")
        if len(keys) > len(shown):
            click.echo(f"  ... and {len(keys) - len(shown)} more (--all-keys lists them)")
    total = sum(len(keys) for keys in stale.values())
    if total == 0:
        click.echo("nothing to prune: every partition key belongs to a cohort", err=True)
    elif dry_run:
        click.echo(
            f"dry run: {total} key(s) would be removed; run without --dry-run to remove them",
            err=True,
        )
