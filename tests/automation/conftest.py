"""A copy of the demo cohort (catalogs + spec) in a temporary data root."""

from __future__ import annotations

from daydreaming_dagster.cli import main


def run_cli(argv: list[str]) -> int:
    """Run ``daydream ARGV`` in this process; return its exit code."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


