"""The per-cohort report: files, tables, links, CSV exports, cohorts without scores."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from daydreaming_dagster.reporting import build_report, write_cohort_report
from daydreaming_dagster.results import SCORE_SCHEMA, CohortNotFoundError, evaluation_scores

from ..results.conftest import COHORT, Store, build_store
from ..results.test_top_and_report import PNG_SIGNATURE, _png_size, _relative_links


@pytest.fixture
def store(data_root: Path) -> Store:
    return build_store(data_root)


def test_report_files_tables_and_links(store: Store) -> None:
    path = build_report(store.root, COHORT, top_n=5)
    reports = store.root / "cohorts" / COHORT / "reports"
    assert path == reports / "report.md"
    text = path.read_text()
    html = (reports / "report.html").read_text()
    _png_size((reports / "score_distributions.png").read_bytes())

    # Top essays, in rank order, linking to their copies and generation directories.
    top = text.split("## Top 5 essays", 1)[1].split("##", 1)[0]
    assert top.index(store.e_copy) < top.index(store.e_a)
    assert store.e_b not in top
    assert f"(../../../results/{COHORT}/top_essays/01_{store.e_copy}.md)" in top
    assert f"(../../../gens/essay/{store.e_a}/)" in top
    # Summary: counts, failures, cost and tokens.
    assert "13 generations: 2 drafts, 3 essays, 8 evaluations. 4 of 8 evaluations have a score." in text
    assert "Cost $0.0660, 3120 tokens (2320 prompt, 800 completion)." in text
    assert "| evaluation | 8 | 4 | 1 | 1 | 2 | 0.0060 | 1800 | 120 | 1920 |" in text
    assert "## Failed and missing generations (4)" in text
    assert "no score found in the last lines" in text
    assert f"{store.v_ghost} (no directory)" in text
    assert "![score distributions](score_distributions.png)" in text
    assert "| essay_gen_id | rubric/m1 | rubric/m2 |" in text
    links = _relative_links(text)
    assert len(links) >= 15  # top copies, generation dirs, index, plot, CSVs, failures
    for link in links:
        assert (reports / link).resolve().exists(), link

    assert html.startswith("<!DOCTYPE html>")
    assert '<img alt="score distributions" src="data:image/png;base64,' in html
    assert store.e_copy in html and "Failed and missing generations (4)" in html
    for link in _relative_links(html):
        assert (reports / link).resolve().exists(), link


def test_report_exports_every_table_as_csv(store: Store) -> None:
    report = write_cohort_report(store.root, COHORT, top_n=2)
    results_dir = store.root / "results" / COHORT
    assert set(report.csv_files) == {"evaluation_scores", "essay_aggregates", "evaluator_pivot",
                                     "template_model_summaries", "generations"}
    for name, path in report.csv_files.items():
        assert path == results_dir / f"{name}.csv" and path.is_file()
    exported = pl.read_csv(results_dir / "evaluation_scores.csv", schema=SCORE_SCHEMA)
    assert exported.equals(evaluation_scores(store.root, COHORT))
    pivot = pl.read_csv(results_dir / "evaluator_pivot.csv")
    assert pivot.shape == (3, 3)
    generations = pl.read_csv(results_dir / "generations.csv")
    assert generations.height == 13
    assert report.stage_summary.select("stage", "members", "ok", "cost_usd", "total_tokens").rows() == [
        ("draft", 2, 2, 0.02, 200), ("essay", 3, 3, 0.04, 1000), ("evaluation", 8, 4, pytest.approx(0.006), 1920)]
    assert (report.n_evaluations, report.n_scored) == (8, 4)


def test_report_with_no_scores_yet(store: Store) -> None:
    cohort_dir = store.root / "cohorts" / "pending"
    cohort_dir.mkdir()
    (cohort_dir / "membership.csv").write_text(f"stage,gen_id\nevaluation,{store.v_b_m2_missing}\n")
    text = build_report(store.root, "pending").read_text()
    assert "No essay has a score yet." in text
    assert "0 of 1 evaluations have a score." in text
    assert (cohort_dir / "reports" / "score_distributions.png").read_bytes()[:8] == PNG_SIGNATURE


def test_report_for_unknown_cohort_writes_nothing(data_root: Path) -> None:
    with pytest.raises(CohortNotFoundError, match="cohort 'missing' not found"):
        build_report(data_root, "missing")
    assert not (data_root / "cohorts").exists() and not (data_root / "results").exists()
