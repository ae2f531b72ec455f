"""Top essays and the score plot."""

from __future__ import annotations

import base64
import re
import struct

import polars as pl
import pytest

from daydreaming_dagster.results import (
    SCORE_SCHEMA,
    essay_aggregates,
    evaluation_scores,
    export_top_essays,
    png_markdown,
    render_score_distributions,
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
