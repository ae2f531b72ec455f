"""`daydream run --dry-run` and re-runs that run only the plan, against the mock server.

A dry run prints the plan and its cost and writes nothing under gens/. A re-run with nothing
to do launches no Dagster run and reports the results as current; after a template edit the
re-run calls the model exactly for the generations rendered from that template and their
descendants (counted at the mock server), and the results are rebuilt.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from dagster import DagsterInstance

from daydreaming_dagster.cohorts import read_membership
from daydreaming_dagster.data_layer import GensDataLayer
from daydreaming_dagster.llm.mock_server import MockConfig, MockLLMServer
from tests.support.cli import run_cli
from tests.support.demo import copy_demo


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    if folder.exists():
        for path in sorted(folder.rglob("*")):
            digest.update(path.relative_to(folder).as_posix().encode())
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _plan_rows(out: str) -> dict[str, list[int]]:
    """stage -> [total, render, call, copy, parse, reused, blocked] from a printed plan."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[0] in ("draft", "essay", "evaluation") and parts[1].isdigit():
            rows[parts[0]] = [int(p) for p in parts[1:]]
    return rows


def _run_count() -> int:
    with DagsterInstance.get() as instance:
        return instance.get_runs_count()


def test_dry_run_of_a_new_cohort_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_demo(tmp_path / "data")
    before = _tree_digest(root)
    code, out, err = run_cli(["run", "demo", "--dry-run", "--data-root", str(root)], capsys)
    assert code == 0, err
    assert _tree_digest(root) == before  # nothing written: not under gens/, not anywhere
    assert not (root / "gens").exists()
    rows = _plan_rows(out)
    # 8 drafts, 16 essays (8 copies), 32 evaluations: all new.
    assert rows == {"draft": [8, 8, 8, 0, 8, 0, 0], "essay": [16, 16, 8, 8, 16, 0, 0],
                    "evaluation": [32, 32, 32, 0, 32, 0, 0]}
    assert "estimated cost of the planned calls: $0.0000" in out


@pytest.mark.slow
def test_rerun_runs_only_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_demo(tmp_path / "data", mock_model=True)
    args = ["--data-root", str(root)]
    with MockLLMServer(MockConfig(latency_s=0.0)) as server:
        monkeypatch.setenv("DAYDREAMING_LLM_BASE_URL", server.base_url)
        code, out, err = run_cli(["run", "demo", *args], capsys)
        assert code == 0, err
        assert server.stats()["total"] == 48  # 8 drafts + 8 essays (8 are copies) + 32 evaluations
        runs_after_first = _run_count()
        report = root / "cohorts" / "demo" / "reports" / "report.md"
        built_at = report.stat().st_mtime_ns

        # Nothing changed: no call, no Dagster run, the report is current (not rebuilt).
        code, out, err = run_cli(["run", "demo", *args], capsys)
        assert code == 0, err
        assert server.stats()["total"] == 48
        assert _run_count() == runs_after_first
        assert "(current: scores and membership unchanged)" in out and "0 Dagster run(s)" in err
        assert report.stat().st_mtime_ns == built_at

        # Edit the template of half the drafts: exactly they and their descendants run again.
        template = root / "1_raw" / "templates" / "draft" / "links-notes.txt"
        template.write_text(template.read_text() + "\nBe brief.\n")
        layer = GensDataLayer.from_root(root)
        members = read_membership(root, "demo")
        edited = [g for g in members["draft"] if layer.read_main_metadata("draft", g)["template_id"] == "links-notes"]
        assert len(edited) == 4
        gens_before = _tree_digest(root / "gens")
        code, out, err = run_cli(["run", "demo", "--dry-run", *args], capsys)
        assert code == 0, err
        assert _tree_digest(root / "gens") == gens_before
        assert _plan_rows(out) == {"draft": [8, 4, 4, 0, 4, 4, 0], "essay": [16, 8, 4, 4, 8, 8, 0],
                                   "evaluation": [32, 16, 16, 0, 16, 16, 0]}
        assert server.stats()["total"] == 48

        code, out, err = run_cli(["run", "demo", *args], capsys)
        assert code == 0, err
        assert server.stats()["total"] == 48 + 4 + 4 + 16
        # One run per stage with work, plus one for the results (changed scores).
        assert _run_count() == runs_after_first + 4
        assert "(current" not in out and report.stat().st_mtime_ns > built_at
