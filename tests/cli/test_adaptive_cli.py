"""`daydream run --dry-run`, `estimate`, `run` and `status` on a gated, adaptive copy of the demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adaptive.test_gate_run import GATE
from tests.support.cli import run_cli

SPENDING = GATE + """
adaptive:
  evaluation:
    goal: {top: 3, confidence: 0.9}
    first: 1
    batch: 4
"""


def test_plan_estimate_run_status_of_a_gated_adaptive_cohort(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = demo_root / "cohorts" / "demo" / "spec" / "config.yaml"
    spec.write_text(spec.read_text() + SPENDING)
    root = str(demo_root)

    code, out, _ = run_cli(["run", "demo", "--data-root", root, "--dry-run"], capsys)
    assert code == 0
    # The first round: drafts, copy essays (no call) and their screen evaluations only.
    assert "evaluation        8       8       8" in out
    assert "essay gate (" in out and "waiting for the screen scores" in out
    assert "worst case (full design): draft 8, essay 8, evaluation 32" in out
    assert not (demo_root / "gens").exists()  # a dry run writes nothing

    code, out, _ = run_cli(["estimate", "demo", "--data-root", root], capsys)
    assert code == 0
    assert "this round (the first, before anything ran): 16 calls to run" in out
    assert "evaluation  offline                           32      32" in out  # the worst case table

    code, out, err = run_cli(["run", "demo", "--data-root", root, "--no-report"], capsys)
    assert code == 0, err
    assert "adaptive evaluation: " in err and "rounds.json" in err

    code, out, _ = run_cli(["status", "demo", "--data-root", root], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "2 of 8 drafts kept; 6 essays and 12 evaluations gated (never called)" in flat
    assert "round(s)" in flat and "stopping rule" in flat and "ended: " in flat
    assert "calls saved against the full design: draft 0, essay 6, evaluation" in flat
