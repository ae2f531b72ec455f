"""Configuration failures are failures: whatever stops a generation (a missing parent, an
unknown parser) is written to its metadata with ``success: false`` and shows in `daydream
status`, the report and `daydream retry-failed`; "missing" means only "never attempted"."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from daydreaming_dagster.cohorts import read_membership
from tests.support.cli import run_cli


@pytest.mark.slow
def test_missing_parents_are_recorded_and_listed_everywhere(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(demo_root)
    # Every draft is rejected (too few lines), so no essay can build its prompt.
    code, _, err = run_cli(["run", "demo", "--stage", "draft", "--stage", "essay", "--min-lines", "500",
                            "--no-report", "--data-root", root], capsys)
    assert code == 1, err
    members = read_membership(demo_root, "demo")
    for essay in members["essay"]:
        meta = json.loads((demo_root / "gens" / "essay" / essay / "raw_metadata.json").read_text())
        assert meta["success"] is False and meta["failed"] is True
        assert meta["failure_reason"] == "parent_missing" and meta["phase"] == "prompt"
        assert "has no parsed output yet" in meta["error"]
        assert not (demo_root / "gens" / "essay" / essay / "prompt.txt").exists()

    code, out, _ = run_cli(["status", "demo", "--failures", "100", "--data-root", root], capsys)
    assert code == 0
    assert "essay failures (16)" in out and "draft failures (8)" in out
    assert out.count("has no parsed output yet") == 16

    code, out, _ = run_cli(["report", "demo", "--data-root", root], capsys)
    assert code == 0
    report_line = next(line for line in out.splitlines() if line.startswith("report: "))
    report = Path(report_line.removeprefix("report: ")).read_text()
    assert report.count("parent_missing") == 16
    assert "Failed and missing generations (56)" in report  # 8 drafts + 16 essays failed, 32 never attempted

    code, out, err = run_cli(["retry-failed", "demo", "--dry-run", "--data-root", root], capsys)
    assert code == 0
    listed = out.splitlines()
    assert {line.split("\t")[1] for line in listed if line.startswith("essay\t")} == set(members["essay"])


@pytest.mark.slow
def test_unknown_parser_found_by_reparse_is_a_recorded_failure(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(demo_root)
    code, _, err = run_cli(["run", "demo", "--stage", "draft", "--no-report", "--data-root", root], capsys)
    assert code == 0, err
    catalog = demo_root / "1_raw" / "draft_templates.csv"
    with catalog.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with catalog.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "parser": "essay_blok"} for row in rows)

    code, out, err = run_cli(["reparse", "demo", "--stage", "draft", "--data-root", root], capsys)
    assert code == 1 and "8 failed" in out
    draft = read_membership(demo_root, "demo")["draft"][0]
    meta = json.loads((demo_root / "gens" / "draft" / draft / "parsed_metadata.json").read_text())
    assert meta["success"] is False and meta["failure_reason"] == "config"
    assert "unknown draft parser 'essay_blok'" in meta["error"]

    code, out, _ = run_cli(["status", "demo", "--data-root", root], capsys)
    assert "draft failures (8)" in out and "unknown draft parser 'essay_blok'" in out

    # The next run's pre-flight names the file and line instead of paying for anything.
    code, _, err = run_cli(["run", "demo", "--data-root", root], capsys)
    assert code == 2 and "draft_templates.csv:2" in err and "essay_blok" in err
