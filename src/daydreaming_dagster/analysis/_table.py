"""The analysis input: one long score table, validated and turned into index arrays.

A score table has one row per score with at least ``essay_gen_id``, ``evaluator`` and
``score`` (optional ``scale``, e.g. ``0-9``). Every other column is a factor: columns named in
:data:`EVALUATOR_FACTORS` describe the evaluator (constant per evaluator), all others
describe the essay (constant per essay). No Dagster here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import DaydreamError
from ..results.human_ratings import HUMAN_EVALUATOR_PREFIX, ratings_frame
from ..results.scales import normalise_score, scale_bounds
from ..results.scores import evaluation_scores

__all__ = [
    "COHORT_ESSAY_FACTORS",
    "DRAFT_COLUMN",
    "EVALUATOR_FACTORS",
    "REQUIRED_COLUMNS",
    "AnalysisInputError",
    "PreparedScores",
    "load_score_table",
    "prepare_scores",
    "read_score_csv",
]

REQUIRED_COLUMNS = ("essay_gen_id", "evaluator", "score")
SCALE_COLUMN = "scale"
DRAFT_COLUMN = "draft_gen_id"
"""Optional: the essay's parent draft. Not a factor: it tells which essays share a draft, so
intervals treat the draft (not the essay) as the independent unit."""
EVALUATOR_FACTORS = ("evaluation_template", "evaluation_llm")
"""Factor columns that describe the evaluator (constant per evaluator), not the essay."""
COHORT_ESSAY_FACTORS = ("combo_id", "draft_template", "draft_llm", "essay_template", "essay_llm")
"""Essay-level spec axes taken from a cohort's scores table."""
NO_LEVEL = "(none)"
COPY_LEVEL = "(copy)"
HUMAN_LEVEL = "human"
"""``evaluation_template`` / ``evaluation_llm`` level of human ratings."""
_ROW = "_source_row"


class AnalysisInputError(DaydreamError, ValueError):
    """The score table cannot be analysed: the message names the file, column, row or essay."""


@dataclass(frozen=True)
class PreparedScores:
    """A validated score table as arrays, rows sorted by essay then evaluator."""

    frame: pl.DataFrame
    """The table as analysed (``score`` normalised to 0-1 when scales differ), sorted."""
    essays: tuple[str, ...]
    """Essay ids, sorted; ``essay_index`` points into it."""
    evaluators: tuple[str, ...]
    """Evaluator labels, sorted; ``evaluator_index`` points into it."""
    essay_index: np.ndarray
    evaluator_index: np.ndarray
    y: np.ndarray
    """The scores analysed (float64)."""
    essay_factors: tuple[str, ...]
    """Factor columns constant per essay."""
    evaluator_factors: tuple[str, ...]
    """Factor columns constant per evaluator."""
    scale: str | None
    """The shared scale, ``0-1`` after normalisation, or ``None`` when no scale was given."""
    normalised: bool
    """True when scores on different scales were mapped to 0-1 before combining."""
    source_scales: tuple[str, ...]
    """The distinct scales the input used."""

    @property
    def n_scores(self) -> int:
        return int(self.y.size)

    @property
    def n_essays(self) -> int:
        return len(self.essays)

    @property
    def essay_starts(self) -> np.ndarray:
        """Index of each essay's first row (rows are sorted by essay)."""
        return np.searchsorted(self.essay_index, np.arange(self.n_essays))

    @property
    def essay_counts(self) -> np.ndarray:
        return np.bincount(self.essay_index, minlength=self.n_essays)

    def essay_levels(self, factor: str) -> list[str]:
        """The level of ``factor`` for each essay, in :attr:`essays` order."""
        firsts = self.frame[factor].gather(self.essay_starts)
        return [str(v) for v in firsts.to_list()]

    def evaluator_levels(self, factor: str) -> list[str]:
        """The level of ``factor`` for each evaluator, in :attr:`evaluators` order."""
        _, first_rows = np.unique(self.evaluator_index, return_index=True)
        return [str(v) for v in self.frame[factor].gather(first_rows).to_list()]


def _where(source: str, row: int | None) -> str:
    return f"{source} row {row}" if row is not None else source


def prepare_scores(table: pl.DataFrame, source: str = "score table") -> PreparedScores:
    """Validate ``table`` and build :class:`PreparedScores`.

    Raises :class:`AnalysisInputError` for no rows, a missing column, an empty essay id or
    evaluator, a non-numeric or missing score, an invalid scale, a score outside its scale, a
    scale given on some rows only, or a factor column that is not constant per essay (per
    evaluator for :data:`EVALUATOR_FACTORS`). ``source`` (a file name) starts every message.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise AnalysisInputError(
            f"{source}: missing column(s) {', '.join(missing)}; a score table needs "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: scale, then any essay-level factor columns)"
        )
    if table.height == 0:
        raise AnalysisInputError(f"{source}: no scores (the table has a header but no rows)")
    frame = table
    if _ROW not in frame.columns:
        frame = frame.with_row_index(_ROW, offset=1).with_columns(pl.col(_ROW).cast(pl.Int64))
    frame = frame.with_columns(
        pl.col("essay_gen_id").cast(pl.String).str.strip_chars(),
        pl.col("evaluator").cast(pl.String).str.strip_chars(),
    )
    for column in ("essay_gen_id", "evaluator"):
        empty = frame.filter(pl.col(column).is_null() | (pl.col(column) == ""))
        if empty.height:
            raise AnalysisInputError(f"{_where(source, empty[_ROW][0])}: empty {column}; every score needs one")
    frame = _numeric_scores(frame, source)
    frame, scale, normalised, scales = _normalised(frame, source)
    factors = [c for c in frame.columns if c not in (*REQUIRED_COLUMNS, SCALE_COLUMN, DRAFT_COLUMN, _ROW)]
    frame = frame.with_columns(pl.col(c).cast(pl.String).fill_null(NO_LEVEL) for c in factors)
    if DRAFT_COLUMN in frame.columns:
        # An essay without a known draft is its own unit.
        draft = pl.col(DRAFT_COLUMN).cast(pl.String).str.strip_chars()
        frame = frame.with_columns(
            pl.when(draft.is_null() | (draft == "")).then(pl.lit("essay:") + pl.col("essay_gen_id"))
            .otherwise(draft).alias(DRAFT_COLUMN))
        _check_constant(frame, (DRAFT_COLUMN,), "essay_gen_id", "essay", source)
    essay_factors = tuple(c for c in factors if c not in EVALUATOR_FACTORS)
    evaluator_factors = tuple(c for c in factors if c in EVALUATOR_FACTORS)
    _check_constant(frame, essay_factors, "essay_gen_id", "essay", source)
    _check_constant(frame, evaluator_factors, "evaluator", "evaluator", source)
    frame = frame.sort(["essay_gen_id", "evaluator", _ROW])
    essays = tuple(sorted(frame["essay_gen_id"].unique().to_list()))
    evaluators = tuple(sorted(frame["evaluator"].unique().to_list()))
    essay_index = np.searchsorted(np.array(essays, dtype=object), frame["essay_gen_id"].to_numpy())
    evaluator_index = np.searchsorted(np.array(evaluators, dtype=object), frame["evaluator"].to_numpy())
    return PreparedScores(
        frame=frame,
        essays=essays,
        evaluators=evaluators,
        essay_index=essay_index.astype(np.int64),
        evaluator_index=evaluator_index.astype(np.int64),
        y=frame["score"].to_numpy().astype(np.float64),
        essay_factors=essay_factors,
        evaluator_factors=evaluator_factors,
        scale=scale,
        normalised=normalised,
        source_scales=scales,
    )


def _numeric_scores(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    text = pl.col("score").cast(pl.String).str.strip_chars()
    frame = frame.with_columns(text.alias("_score_text"), text.cast(pl.Float64, strict=False).alias("_score"))
    bad = frame.filter(pl.col("_score").is_null() | pl.col("_score").is_nan() | pl.col("_score").is_infinite())
    if bad.height:
        row = bad.row(0, named=True)
        value = row["_score_text"]
        what = "is empty" if value in (None, "") else f"{value!r} is not a number"
        raise AnalysisInputError(
            f"{_where(source, row[_ROW])}: score {what} (essay {row['essay_gen_id']}, evaluator "
            f"{row['evaluator']}); every score must be a finite number"
        )
    return frame.with_columns(pl.col("_score").alias("score")).drop("_score", "_score_text")


def _normalised(frame: pl.DataFrame, source: str) -> tuple[pl.DataFrame, str | None, bool, tuple[str, ...]]:
    """Check scales; map scores to 0-1 when more than one scale is used."""
    if SCALE_COLUMN not in frame.columns:
        return frame, None, False, ()
    frame = frame.with_columns(pl.col(SCALE_COLUMN).cast(pl.String).str.strip_chars().replace("", None))
    scales = tuple(sorted(s for s in frame[SCALE_COLUMN].unique().to_list() if s is not None))
    if not scales:
        return frame.drop(SCALE_COLUMN), None, False, ()
    without = frame.filter(pl.col(SCALE_COLUMN).is_null())
    if without.height:
        raise AnalysisInputError(
            f"{_where(source, without[_ROW][0])}: no scale while other rows use {', '.join(scales)}; "
            "fill the scale column on every row (or on none)"
        )
    bounds = {}
    for scale in scales:
        try:
            bounds[scale] = scale_bounds(scale)
        except ValueError as exc:
            row = frame.filter(pl.col(SCALE_COLUMN) == scale)[_ROW][0]
            raise AnalysisInputError(f"{_where(source, row)}: {exc}") from None
    for scale, (low, high) in bounds.items():
        off = frame.filter((pl.col(SCALE_COLUMN) == scale) & ((pl.col("score") < low) | (pl.col("score") > high)))
        if off.height:
            row = off.row(0, named=True)
            raise AnalysisInputError(
                f"{_where(source, row[_ROW])}: score {row['score']:g} is outside its scale {scale} "
                f"(essay {row['essay_gen_id']}, evaluator {row['evaluator']})"
            )
    if len(scales) == 1:
        return frame, scales[0], False, scales
    mapped = pl.struct("score", SCALE_COLUMN).map_elements(
        lambda r: normalise_score(r["score"], r[SCALE_COLUMN]), return_dtype=pl.Float64
    )
    return frame.with_columns(mapped.alias("score")), "0-1", True, scales


def _check_constant(frame: pl.DataFrame, columns: tuple[str, ...], key: str, what: str, source: str) -> None:
    for column in columns:
        varying = frame.group_by(key).agg(pl.col(column).unique().sort().alias("_levels")).filter(
            pl.col("_levels").list.len() > 1
        ).sort(key)
        if varying.height:
            unit, levels = varying.row(0)
            shown = ", ".join(repr(v) for v in levels[:4])
            raise AnalysisInputError(
                f"{source}: column {column!r} is not constant for {what} {unit!r} (values {shown}); "
                f"every column other than {', '.join(REQUIRED_COLUMNS)}, scale must describe the {what} "
                "(drop the column or fix the rows)"
            )


def read_score_csv(path: str | os.PathLike[str] | Path) -> pl.DataFrame:
    """Read a score CSV as text columns (numbers are checked by :func:`prepare_scores`).

    Raises :class:`AnalysisInputError` naming the file when it is missing, empty or not CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise AnalysisInputError(f"{path}: file not found")
    with path.open("rb") as handle:
        start = handle.read(65536)
    if not start.strip():
        raise AnalysisInputError(f"{path}: the file is empty; expected a CSV with columns {', '.join(REQUIRED_COLUMNS)}")
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, UnicodeDecodeError) as exc:
        raise AnalysisInputError(f"{path}: not a readable CSV file: {str(exc).splitlines()[0]}") from None
    # Row numbers as a person counts them in the file: the header is line 1.
    return frame.with_row_index(_ROW, offset=2).with_columns(pl.col(_ROW).cast(pl.Int64))


def load_score_table(
    data_root: str | os.PathLike[str] | Path, cohort_id: str, include_human: bool = True
) -> pl.DataFrame:
    """The long score table of a cohort: parsed LLM scores plus (optionally) human ratings.

    Columns: ``essay_gen_id, evaluator, score, scale``, the essay-level factors
    :data:`COHORT_ESSAY_FACTORS` (copy-mode essays get essay model ``(copy)``) and the
    evaluator-level factors :data:`EVALUATOR_FACTORS`. Only evaluations whose
    ``parse_status`` is ``ok`` contribute. Human raters appear as evaluators
    ``human/<rater>`` with ``evaluation_template`` and ``evaluation_llm`` set to ``human`` and
    the essay's factors copied from its LLM evaluations. Raises
    :class:`~daydreaming_dagster.results.cohort.CohortNotFoundError` for an unknown cohort.
    """
    scores = evaluation_scores(data_root, cohort_id)
    essay_llm = (
        pl.when(pl.col("essay_mode") == "copy").then(pl.lit(COPY_LEVEL)).otherwise(pl.col("essay_llm")).alias("essay_llm")
    )
    lineage = (
        scores.filter(pl.col("essay_gen_id").is_not_null())
        .with_columns(essay_llm)
        .group_by("essay_gen_id", maintain_order=True)
        .agg(pl.col(c).drop_nulls().first() for c in (DRAFT_COLUMN, *COHORT_ESSAY_FACTORS))
    )
    llm = (
        scores.filter((pl.col("parse_status") == "ok") & pl.col("score").is_not_null() & pl.col("essay_gen_id").is_not_null())
        .select("essay_gen_id", "evaluator", "score", "scale", *EVALUATOR_FACTORS)
        .join(lineage, on="essay_gen_id", how="left")
    )
    columns = ["essay_gen_id", "evaluator", "score", "scale", DRAFT_COLUMN, *COHORT_ESSAY_FACTORS, *EVALUATOR_FACTORS]
    frames = [llm.select(columns)]
    if include_human:
        human = ratings_frame(data_root, cohort_id)
        if human.height:
            frames.append(
                human.select("essay_gen_id", "evaluator", "score", "scale")
                .join(lineage, on="essay_gen_id", how="left")
                .with_columns(pl.lit(HUMAN_LEVEL).alias(c) for c in EVALUATOR_FACTORS)
                .select(columns)
            )
    schema = {c: pl.String() for c in columns} | {"score": pl.Float64()}
    return pl.concat([f.cast(schema) for f in frames], how="vertical")


def is_human(evaluator: str) -> bool:
    """True for a human rater's evaluator label (``human/<rater>``)."""
    return evaluator.startswith(HUMAN_EVALUATOR_PREFIX)


def split_humans(table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(LLM rows, human rows) of a score table, by the ``human/`` evaluator prefix."""
    if "evaluator" not in table.columns:
        return table, table.clear()
    human = pl.col("evaluator").cast(pl.String).str.strip_chars().str.starts_with(HUMAN_EVALUATOR_PREFIX)
    return table.filter(~human), table.filter(human)
