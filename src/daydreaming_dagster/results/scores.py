"""The scores table: one row per evaluation of a cohort, with its full lineage (DESIGN §7)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from ..combos import read_combo_mappings
from .cohort import CohortRecords, GenerationRecord, load_cohort_records

__all__ = ["CONCEPT_SEPARATOR", "SCORE_SCHEMA", "concepts_by_combo", "evaluation_scores", "evaluator_label", "scores_from_records"]

CONCEPT_SEPARATOR = ";"

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "evaluation_gen_id": pl.String(),
    "essay_gen_id": pl.String(),
    "draft_gen_id": pl.String(),
    "combo_id": pl.String(),
    "concept_ids": pl.String(),
    "draft_template": pl.String(),
    "draft_llm": pl.String(),
    "draft_replicate": pl.Int64(),
    "essay_template": pl.String(),
    "essay_mode": pl.String(),
    "essay_llm": pl.String(),
    "essay_replicate": pl.Int64(),
    "evaluation_template": pl.String(),
    "evaluation_llm": pl.String(),
    "evaluation_replicate": pl.Int64(),
    "evaluator": pl.String(),
    "score": pl.Float64(),
    "scale": pl.String(),
    "parse_status": pl.String(),
    "error": pl.String(),
    "cost_usd": pl.Float64(),
    "total_tokens": pl.Int64(),
}
"""Columns of :func:`evaluation_scores` (fixed types, so an all-null column keeps its type in
Parquet, DuckDB and SQL)."""


def evaluator_label(template: str | None, llm: str | None) -> str | None:
    """``<evaluation_template>/<evaluation_llm>``: the pivot's column name for one evaluator."""
    if template is None and llm is None:
        return None
    return f"{template or '?'}/{llm or '?'}"


def _upstream_error(record: GenerationRecord, parent: GenerationRecord | None, parent_kind: str) -> str | None:
    """For a generation not made yet, say when the reason is a parent that failed."""
    if record.status != "missing" or record.metadata is None or parent is None or parent.status == "ok":
        return record.error
    return f"parent {parent_kind} {parent.gen_id} is {parent.status}" + (f" ({parent.error})" if parent.error else "")


def scores_from_records(cohort: CohortRecords, concepts_by_combo: dict[str, tuple[str, ...]] | None = None) -> pl.DataFrame:
    """Build the scores table (:data:`SCORE_SCHEMA`) from loaded records.

    Rows are sorted by essay, evaluator, replicate and evaluation id. ``score`` is null unless
    ``parse_status`` is ``ok``; ``error`` says why (the parser's or raw phase's message, or the
    failed parent). ``cost_usd``/``total_tokens`` are the evaluation call's own.
    """
    concepts_by_combo = concepts_by_combo or {}
    rows = []
    for evaluation in cohort.member_records("evaluation"):
        essay = cohort.parent(evaluation)
        draft = cohort.parent(essay) if essay is not None else None
        combo_id = (draft.combo_id if draft is not None else None) or (essay.combo_id if essay else None) or evaluation.combo_id
        concepts = concepts_by_combo.get(combo_id) if combo_id else None
        rows.append({
            "evaluation_gen_id": evaluation.gen_id,
            "essay_gen_id": evaluation.parent_gen_id,
            "draft_gen_id": essay.parent_gen_id if essay is not None else None,
            "combo_id": combo_id,
            "concept_ids": CONCEPT_SEPARATOR.join(concepts) if concepts else None,
            "draft_template": draft.template_id if draft is not None else None,
            "draft_llm": draft.llm_model_id if draft is not None else None,
            "draft_replicate": draft.replicate if draft is not None else None,
            "essay_template": essay.template_id if essay is not None else None,
            "essay_mode": essay.mode if essay is not None else None,
            "essay_llm": essay.llm_model_id if essay is not None else None,
            "essay_replicate": essay.replicate if essay is not None else None,
            "evaluation_template": evaluation.template_id,
            "evaluation_llm": evaluation.llm_model_id,
            "evaluation_replicate": evaluation.replicate,
            "evaluator": evaluator_label(evaluation.template_id, evaluation.llm_model_id),
            "score": evaluation.score,
            "scale": evaluation.scale,
            "parse_status": evaluation.status,
            "error": _upstream_error(evaluation, essay, "essay"),
            "cost_usd": evaluation.cost_usd,
            "total_tokens": evaluation.tokens("total_tokens"),
        })
    frame = pl.DataFrame(rows, schema=SCORE_SCHEMA)
    return frame.sort(["essay_gen_id", "evaluator", "evaluation_replicate", "evaluation_gen_id"], nulls_last=True)


def concepts_by_combo(data_root: str | os.PathLike[str] | Path) -> dict[str, tuple[str, ...]]:
    """``combo_id → concept ids`` from ``combo_mappings.csv`` (empty when the file is absent)."""
    return {combo_id: record.concept_ids for combo_id, record in read_combo_mappings(data_root).items()}


def evaluation_scores(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> pl.DataFrame:
    """One row per evaluation of ``cohort_id`` with its lineage, score and parse status.

    Each generation's metadata files are read once (drafts and essays shared by many
    evaluations are cached). Failed or missing evaluations are rows too (``score`` null,
    ``parse_status`` ``parse_error`` / ``raw_failed`` / ``missing``). Raises
    :class:`~daydreaming_dagster.results.cohort.CohortNotFoundError` when the cohort does not
    exist or has no membership.
    """
    cohort = load_cohort_records(data_root, cohort_id)
    return scores_from_records(cohort, concepts_by_combo(data_root))
