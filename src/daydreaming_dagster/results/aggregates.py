"""Aggregates over the scores table: per essay, essay × evaluator, per template and model.

Only evaluations with ``parse_status == "ok"`` contribute scores; failed and missing ones are
still counted (``n_evaluations``, ``n_failed``) so a summary shows what is absent.
"""

from __future__ import annotations

import polars as pl

from .cohort import WITHHELD

__all__ = [
    "ESSAY_AGGREGATE_SCHEMA",
    "ESSAY_LINEAGE_COLUMNS",
    "SUMMARY_DIMENSIONS",
    "SUMMARY_SCHEMA",
    "essay_aggregates",
    "evaluator_pivot",
    "group_summary",
    "level_label",
    "template_model_summaries",
]

ESSAY_LINEAGE_COLUMNS = (
    "draft_gen_id",
    "combo_id",
    "concept_ids",
    "draft_template",
    "draft_llm",
    "essay_template",
    "essay_llm",
)
SUMMARY_DIMENSIONS = (
    "draft_template",
    "essay_template",
    "evaluation_template",
    "draft_llm",
    "essay_llm",
    "evaluation_llm",
)
NO_LEVEL = "(none)"
"""Level shown for a null value (lineage lost: the evaluation's metadata is missing)."""
COPY_LEVEL = "(copy)"
"""Essay-model level of copy-mode essays (they call no model)."""

ESSAY_AGGREGATE_SCHEMA: dict[str, pl.DataType] = {
    "rank": pl.Int64(),
    "essay_gen_id": pl.String(),
    **{column: pl.String() for column in ESSAY_LINEAGE_COLUMNS},
    "n_evaluations": pl.Int64(),
    "n": pl.Int64(),
    "n_evaluators": pl.Int64(),
    "mean": pl.Float64(),
    "std": pl.Float64(),
    "min": pl.Float64(),
    "max": pl.Float64(),
    "spread": pl.Float64(),
}
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "dimension": pl.String(),
    "level": pl.String(),
    "n_evaluations": pl.Int64(),
    "n_failed": pl.Int64(),
    "n": pl.Int64(),
    "mean": pl.Float64(),
    "std": pl.Float64(),
    "min": pl.Float64(),
    "max": pl.Float64(),
}

_SCORED = (pl.col("parse_status") == "ok") & pl.col("score").is_not_null()


def _scored(scores: pl.DataFrame) -> pl.DataFrame:
    return scores.filter(_SCORED)


def essay_aggregates(scores: pl.DataFrame) -> pl.DataFrame:
    """One row per essay (:data:`ESSAY_AGGREGATE_SCHEMA`), best first.

    ``n`` counts scored evaluations and ``n_evaluations`` all of them; ``mean``, ``std``
    (sample, null below two scores), ``min`` and ``max`` are over individual scores;
    ``spread`` is the range between evaluators: max − min of the per-evaluator
    (template/model) mean scores, 0 with one evaluator. ``rank`` orders essays with scores by
    mean (desc), then ``n`` (desc), then essay id, so ties are broken the same way every time;
    essays without any score come last with a null rank.
    """
    essays = scores.filter(pl.col("essay_gen_id").is_not_null())
    if essays.is_empty():
        return pl.DataFrame(schema=ESSAY_AGGREGATE_SCHEMA)
    lineage = essays.group_by("essay_gen_id", maintain_order=True).agg(
        *(pl.col(c).drop_nulls().first().alias(c) for c in ESSAY_LINEAGE_COLUMNS),
        pl.len().cast(pl.Int64).alias("n_evaluations"),
    )
    scored = _scored(essays)
    stats = scored.group_by("essay_gen_id").agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("score").mean().alias("mean"),
        pl.col("score").std().alias("std"),
        pl.col("score").min().alias("min"),
        pl.col("score").max().alias("max"),
    )
    per_evaluator = scored.group_by("essay_gen_id", "evaluator").agg(pl.col("score").mean().alias("evaluator_mean"))
    between = per_evaluator.group_by("essay_gen_id").agg(
        pl.len().cast(pl.Int64).alias("n_evaluators"),
        (pl.col("evaluator_mean").max() - pl.col("evaluator_mean").min()).alias("spread"),
    )
    frame = (
        lineage.join(stats, on="essay_gen_id", how="left")
        .join(between, on="essay_gen_id", how="left")
        .with_columns(pl.col("n").fill_null(0), pl.col("n_evaluators").fill_null(0))
        .sort(["mean", "n", "essay_gen_id"], descending=[True, True, False], nulls_last=True)
    )
    frame = frame.with_columns(
        pl.when(pl.col("n") > 0).then(pl.int_range(1, pl.len() + 1)).otherwise(None).cast(pl.Int64).alias("rank")
    )
    return frame.select([pl.col(c).cast(t) for c, t in ESSAY_AGGREGATE_SCHEMA.items()])


def evaluator_pivot(scores: pl.DataFrame) -> pl.DataFrame:
    """Essay × evaluator: ``essay_gen_id`` then one column per evaluator
    (``<evaluation_template>/<evaluation_llm>``, sorted) holding the mean score over that
    evaluator's replicates (null when it gave no score). Rows follow :func:`essay_aggregates`
    ranking; essays without any score are kept, all null."""
    order = essay_aggregates(scores).select("essay_gen_id")
    scored = _scored(scores).filter(pl.col("essay_gen_id").is_not_null() & pl.col("evaluator").is_not_null())
    if scored.is_empty():
        return order
    wide = scored.pivot(on="evaluator", index="essay_gen_id", values="score", aggregate_function="mean")
    evaluators = sorted(c for c in wide.columns if c != "essay_gen_id")
    return order.join(wide, on="essay_gen_id", how="left", maintain_order="left").select(["essay_gen_id", *evaluators])


def level_label(column: str, columns: list[str]) -> pl.Expr:
    """``column`` as a display level: nulls as ``(none)``, the essay model of copy-mode
    essays as ``(copy)``."""
    level = pl.col(column).cast(pl.String)
    if column == "essay_llm" and "essay_mode" in columns:
        level = pl.when(pl.col("essay_mode") == "copy").then(pl.lit(COPY_LEVEL)).otherwise(level)
    return level.fill_null(NO_LEVEL)


def group_summary(scores: pl.DataFrame, by: str) -> pl.DataFrame:
    """``n_evaluations``, ``n_failed`` (not ``ok``), ``n`` scored, ``mean``, ``std``, ``min``,
    ``max`` of the scores per level of column ``by`` (null levels shown as ``(none)``; the
    essay model of copy-mode essays as ``(copy)``), best mean first, then by level."""
    if by not in scores.columns:
        raise ValueError(f"cannot summarise by {by!r}: not a column of the scores table ({', '.join(scores.columns)})")
    scored_score = pl.when(_SCORED).then(pl.col("score"))
    summary = (
        scores.with_columns(level_label(by, scores.columns).alias("level"))
        .group_by("level")
        .agg(
            pl.len().cast(pl.Int64).alias("n_evaluations"),
            # Held back on purpose by a gate or adaptive evaluation: not a failure.
            (~pl.col("parse_status").is_in(["ok", *WITHHELD])).sum().cast(pl.Int64).alias("n_failed"),
            scored_score.count().cast(pl.Int64).alias("n"),
            scored_score.mean().alias("mean"),
            scored_score.std().alias("std"),
            scored_score.min().alias("min"),
            scored_score.max().alias("max"),
        )
        .with_columns(pl.lit(by).alias("dimension"))
        .sort(["mean", "level"], descending=[True, False], nulls_last=True)
    )
    return summary.select([pl.col(c).cast(t) for c, t in SUMMARY_SCHEMA.items()])


def template_model_summaries(scores: pl.DataFrame, dimensions: tuple[str, ...] = SUMMARY_DIMENSIONS) -> pl.DataFrame:
    """:func:`group_summary` for each of ``dimensions`` (draft/essay/evaluation template and
    model by default), stacked in one long table keyed by ``dimension`` and ``level``."""
    frames = [group_summary(scores, dimension) for dimension in dimensions]
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=SUMMARY_SCHEMA)
