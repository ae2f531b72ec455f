"""`daydream cohort compile|new|build|list` through click's runner and a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from daydreaming_dagster.cli.cohort import cohort
from daydreaming_dagster.cohorts import compile_design


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_compile_prints_csv_rows_and_stats(runner: CliRunner, demo_root: Path) -> None:
    spec = demo_root / "cohorts" / "demo" / "spec" / "config.yaml"
    result = runner.invoke(cohort, ["compile", str(spec)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 32
    assert list(rows[0]) == ["combo_id", "draft_template", "draft_llm", "essay_template", "essay_llm", "evaluation_template", "evaluation_llm"]
    expected = {tuple(r.values()) for r in compile_design(spec).rows}
    assert {tuple(r.values()) for r in rows} == expected
    # Catalogs found beside the spec: copy-mode essays make no model call.
    assert "32 design rows" in result.stderr
    assert "draft: 8 generations, 8 model calls" in result.stderr
    assert "essay: 16 generations, 8 model calls" in result.stderr
    assert "evaluation: 32 generations, 32 model calls" in result.stderr
    assert "total: 56 generations, 48 model calls" in result.stderr
    assert "design rows" not in result.stdout


def test_compile_jsonl_to_file_and_directory_argument(runner: CliRunner, demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "rows.jsonl"
    result = runner.invoke(cohort, ["compile", str(demo_root / "cohorts" / "demo" / "spec"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 32 and lines[0]["draft_llm"] == "offline"
    assert f"wrote {out}" in result.stderr
    explicit = tmp_path / "rows.txt"
    assert runner.invoke(cohort, ["compile", str(demo_root / "cohorts" / "demo" / "spec"), "--format", "jsonl", "--out", str(explicit)]).exit_code == 0
    assert explicit.read_text() == out.read_text()


def test_compile_generic_spec_without_catalogs(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text("axes:\n  a: [x, y]\n  b: [1, 2]\n")
    result = runner.invoke(cohort, ["compile", str(spec), "--format", "jsonl"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == '{"a": "x", "b": "1"}'
    assert "4 design rows" in result.stderr and "generations: not computed" in result.stderr


def test_new_scaffolds_a_spec_that_builds_and_refuses_to_overwrite(runner: CliRunner, demo_root: Path) -> None:
    result = runner.invoke(cohort, ["new", "trial", "--data-root", str(demo_root)])
    assert result.exit_code == 0, result.output
    spec = demo_root / "cohorts" / "trial" / "spec" / "config.yaml"
    text = spec.read_text()
    assert text.startswith("# Cohort spec for 'trial'") and "rules:" in text and "@file:" in text
    before = text
    again = runner.invoke(cohort, ["new", "trial", "--data-root", str(demo_root)])
    assert again.exit_code != 0 and "already exists" in again.output
    assert spec.read_text() == before
    assert len(compile_design(spec)) == 3  # every 2 of 3 concepts, one template each
    built = runner.invoke(cohort, ["build", "trial", "--data-root", str(demo_root)])
    assert built.exit_code == 0, built.output
    assert "draft: 3 generations, 3 model calls" in built.output
    assert "metadata: 9 seeded, 0 already present" in built.output
    listing = runner.invoke(cohort, ["list", "--data-root", str(demo_root)])
    assert listing.output.splitlines() == ["demo\tnot built", "trial\tbuilt"]
    bad = runner.invoke(cohort, ["new", "bad id", "--data-root", str(demo_root)])
    assert bad.exit_code != 0 and "not a valid cohort id" in bad.output


def test_spec_error_exits_2_with_one_line(tmp_path: Path) -> None:
    """The real console entry point: a bad spec prints `error: <file>: <rule>: ...` and exits 2."""
    spec = tmp_path / "bad.yaml"
    spec.write_text("axes:\n  draft_template: [d1]\nrules:\n  subsets:\n    draft_template: [d2]\n")
    result = subprocess.run(
        [sys.executable, "-m", "daydreaming_dagster", "cohort", "compile", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "DAYDREAMING_DATA_ROOT": str(tmp_path)},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {spec}: rules.subsets.draft_template: level(s) d2")
