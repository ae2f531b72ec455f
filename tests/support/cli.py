"""Run the `daydream` CLI in the test's own process."""

from __future__ import annotations

import pytest

from daydreaming_dagster.cli import main


def exit_code(argv: list[str]) -> int:
    """Run ``daydream ARGV``; return its exit code (``main`` exits through SystemExit)."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``daydream ARGV``; return (exit code, stdout, stderr)."""
    code = exit_code(argv)
    out, err = capsys.readouterr()
    return code, out, err
