"""Top essays, CSV exports, the plot and the per-cohort report."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

import polars as pl
import pytest

from daydreaming_dagster.results import (
    SCORE_SCHEMA,
    CohortNotFoundError,
    build_report,
    essay_aggregates,
    evaluation_scores,
    export_top_essays,
    png_markdown,
    render_score_distributions,
    write_cohort_report,
)
from daydreaming_dagster.results.plots import _panels

from .conftest import COHORT, Store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _relative_links(text: str) -> list[str]:
    links = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r'href="([^"]+)"', text)
    return [link for link in links if not link.startswith(("data:", "http"))]


def test_top_essays_are_copied_with_header_and_index(store: Store) -> None:
    aggregates = essay_aggregates(evaluation_scores(store.root, COHORT))
    ranking = export_top_essays(store.root, COHORT, aggregates, top_n=5)
    top_dir = store.root / "results" / COHORT / "top_essays"
    assert sorted(p.name for p in top_dir.iterdir()) == [
        f"01_{store.e_copy}.md", f"02_{store.e_a}.md", "index.csv"]  # the unscored essay is not ranked
    first = (top_dir / f"01_{store.e_copy}.md").read_text()
    assert first.startswith(f"# Rank 1: essay {store.e_copy}\n")
    assert "mean score: 9.00 over 1 evaluation(s)" in first
    assert f"- draft: {store.d_a}, template `links`, model `m1`" in first
    assert "(concepts: alpha;beta)" in first
    assert first.endswith(f"---\n\nIdea from {store.d_a}.")  # the copy essay's parsed text
    header_links = _relative_links(first)
    assert header_links == [f"../../../gens/essay/{store.e_copy}/", f"../../../gens/draft/{store.d_a}/"]
    for link in header_links:
        assert (top_dir / link).resolve().is_dir(), link

    index = pl.read_csv(top_dir / "index.csv")
    assert index.select("rank", "essay_gen_id", "mean", "n").rows() == [(1, store.e_copy, 9.0, 1), (2, store.e_a, 7.0, 3)]
    for rel in index["file"].to_list() + index["essay_dir"].to_list() + index["draft_dir"].to_list():
        assert (store.root / rel).exists(), rel
    assert ranking.to_dict()["essays"][1]["essay_gen_id"] == store.e_a
    assert ranking.index_file == f"results/{COHORT}/top_essays/index.csv"


def test_a_shorter_ranking_removes_stale_copies(store: Store) -> None:
    aggregates = essay_aggregates(evaluation_scores(store.root, COHORT))
    export_top_essays(store.root, COHORT, aggregates, top_n=5)
    (store.root / "results" / COHORT / "top_essays" / "notes.txt").write_text("mine")
    export_top_essays(store.root, COHORT, aggregates, top_n=1)
    names = sorted(p.name for p in (store.root / "results" / COHORT / "top_essays").iterdir())
    assert names == [f"01_{store.e_copy}.md", "index.csv", "notes.txt"]  # files it does not own stay
    assert pl.read_csv(store.root / "results" / COHORT / "top_essays" / "index.csv").height == 1
    with pytest.raises(ValueError, match="top_n must be >= 0"):
        export_top_essays(store.root, COHORT, aggregates, top_n=-1)


def test_plot_is_a_png_and_embeds_as_markdown(store: Store) -> None:
    scores = evaluation_scores(store.root, COHORT)
    png = render_score_distributions(scores)
    width, height = _png_size(png)
    assert width >= 600 and height >= 300
    markdown = png_markdown(png)
    assert markdown.startswith("![score distributions](data:image/png;base64,")
    assert base64.b64decode(markdown.split(",", 1)[1].rstrip(")")) == png
    panels = {title: [label for label, _ in levels] for title, levels in _panels(
        scores.filter(pl.col("parse_status") == "ok"))}
    assert panels["by evaluation model"] == ["m2 (n=1)", "m1 (n=3)"]
    assert panels["by essay model"] == ["m1 (n=3)", "(copy) (n=1)"]
    assert set(panels) == {"by evaluation template", "by evaluation model", "by draft template",
                           "by essay template", "by draft model", "by essay model"}


def test_plot_without_scores_still_renders() -> None:
    assert _png_size(render_score_distributions(pl.DataFrame(schema=SCORE_SCHEMA)))[0] > 0


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
