"""Per-essay aggregates, the essay × evaluator pivot and the template/model summaries."""

from __future__ import annotations

import math

import polars as pl
import pytest

from daydreaming_dagster.results import (
    ESSAY_AGGREGATE_SCHEMA,
    SCORE_SCHEMA,
    SUMMARY_DIMENSIONS,
    essay_aggregates,
    evaluation_scores,
    evaluator_pivot,
    group_summary,
    template_model_summaries,
)

from .conftest import COHORT, Store


@pytest.fixture
def scores(store: Store) -> pl.DataFrame:
    return evaluation_scores(store.root, COHORT)


def _scores(rows: list[tuple[str, str, str, float | None, str]]) -> pl.DataFrame:
    """A scores frame from (essay, evaluation template, evaluation llm, score, status) rows."""
    records = [
        {"evaluation_gen_id": f"v_{i}", "essay_gen_id": essay, "evaluation_template": tpl, "evaluation_llm": llm,
         "evaluator": f"{tpl}/{llm}", "score": score, "parse_status": status, "evaluation_replicate": 1}
        for i, (essay, tpl, llm, score, status) in enumerate(rows)
    ]
    return pl.DataFrame(records, schema=SCORE_SCHEMA)


def test_essay_aggregates_values(store: Store, scores: pl.DataFrame) -> None:
    frame = essay_aggregates(scores)
    assert dict(frame.schema) == ESSAY_AGGREGATE_SCHEMA
    rows = {r["essay_gen_id"]: r for r in frame.iter_rows(named=True)}
    assert set(rows) == {store.e_a, store.e_copy, store.e_b}  # the ghost has no essay
    a = rows[store.e_a]
    assert (a["rank"], a["n_evaluations"], a["n"], a["n_evaluators"]) == (2, 3, 3, 2)
    assert (a["mean"], a["std"], a["min"], a["max"]) == (7.0, 1.0, 6.0, 8.0)
    # Between evaluators: rubric/m1 averages its replicates (8, 7) to 7.5; rubric/m2 gave 6.
    assert a["spread"] == 1.5
    assert (a["draft_gen_id"], a["concept_ids"], a["essay_template"], a["essay_llm"]) == (
        store.d_a, "alpha;beta", "expand", "m1")
    c = rows[store.e_copy]
    assert (c["rank"], c["n_evaluations"], c["n"], c["mean"], c["std"], c["spread"]) == (1, 2, 1, 9.0, None, 0.0)
    b = rows[store.e_b]
    assert (b["rank"], b["n_evaluations"], b["n"], b["mean"], b["spread"]) == (None, 2, 0, None, None)
    assert frame["essay_gen_id"].to_list() == [store.e_copy, store.e_a, store.e_b]


def test_ties_are_broken_by_count_then_essay_id() -> None:
    frame = essay_aggregates(_scores([
        ("e_b", "t", "m1", 8.0, "ok"), ("e_b", "t", "m2", 8.0, "ok"),
        ("e_a", "t", "m1", 7.0, "ok"), ("e_a", "t", "m2", 9.0, "ok"),
        ("e_c", "t", "m1", 8.0, "ok"),
        ("e_d", "t", "m1", None, "parse_error"),
        ("e_e", "t", "m1", 9.5, "ok"),
    ]))
    assert frame.select("rank", "essay_gen_id").rows() == [
        (1, "e_e"), (2, "e_a"), (3, "e_b"), (4, "e_c"), (None, "e_d")]
    assert frame.filter(pl.col("essay_gen_id") == "e_a")["spread"].item() == 2.0


def test_scores_of_failed_evaluations_never_count() -> None:
    # A stale score in a non-ok row (should not happen) must still be ignored.
    frame = essay_aggregates(_scores([("e_a", "t", "m1", 2.0, "ok"), ("e_a", "t", "m2", 10.0, "parse_error")]))
    row = frame.row(0, named=True)
    assert (row["n"], row["n_evaluations"], row["mean"], row["max"]) == (1, 2, 2.0, 2.0)


def test_pivot_essay_by_evaluator(store: Store, scores: pl.DataFrame) -> None:
    pivot = evaluator_pivot(scores)
    assert pivot.shape == (3, 3)
    assert pivot.columns == ["essay_gen_id", "rubric/m1", "rubric/m2"]
    assert pivot.rows() == [
        (store.e_copy, 9.0, None),
        (store.e_a, 7.5, 6.0),  # replicates of one evaluator are averaged
        (store.e_b, None, None),
    ]


def test_summaries_per_template_and_model(scores: pl.DataFrame) -> None:
    summaries = template_model_summaries(scores)
    assert tuple(dict.fromkeys(summaries["dimension"].to_list())) == SUMMARY_DIMENSIONS
    table = {(r["dimension"], r["level"]): r for r in summaries.iter_rows(named=True)}

    def stats(dimension: str, level: str) -> tuple:
        r = table[(dimension, level)]
        return r["n_evaluations"], r["n_failed"], r["n"], r["mean"], r["std"], r["min"], r["max"]

    assert stats("evaluation_llm", "m1") == (4, 1, 3, 8.0, 1.0, 7.0, 9.0)
    assert stats("evaluation_llm", "m2") == (3, 2, 1, 6.0, None, 6.0, 6.0)
    assert stats("evaluation_llm", "(none)") == (1, 1, 0, None, None, None, None)
    assert stats("essay_llm", "(copy)") == (2, 1, 1, 9.0, None, 9.0, 9.0)
    assert stats("essay_llm", "m1") == (3, 0, 3, 7.0, 1.0, 6.0, 8.0)
    assert stats("essay_llm", "m2") == (2, 2, 0, None, None, None, None)
    assert stats("essay_template", "expand")[:4] == (5, 2, 3, 7.0)
    links = stats("draft_template", "links")
    assert links[:4] == (7, 3, 4, 7.5)
    assert math.isclose(links[4], (5 / 3) ** 0.5)
    assert stats("draft_llm", "m2") == (2, 2, 0, None, None, None, None)
    # Best mean first within a dimension, unscored levels last.
    assert summaries.filter(pl.col("dimension") == "evaluation_llm")["level"].to_list() == ["m1", "m2", "(none)"]


def test_group_summary_rejects_unknown_column(scores: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="cannot summarise by 'colour'"):
        group_summary(scores, "colour")


def test_empty_scores_give_empty_tables() -> None:
    empty = pl.DataFrame(schema=SCORE_SCHEMA)
    assert essay_aggregates(empty).height == 0
    assert dict(essay_aggregates(empty).schema) == ESSAY_AGGREGATE_SCHEMA
    assert evaluator_pivot(empty).columns == ["essay_gen_id"]
    assert template_model_summaries(empty).height == 0
