"""A cohort's pairwise verdicts as one frame (the tournament analysis input, issue 20).

:func:`comparison_verdicts` reads the cohort's ``stage=comparison`` members: each
``gens/comparison/<id>/metadata.json`` (essay A and B as ``parent_gen_ids``, in the order shown;
the judge as ``llm_model_id``; template, replicate, round) and ``parsed.txt`` (exactly ``A``,
``B`` or ``tie``). A comparison that failed, is not parsed yet or holds anything else is left out
and counted (:class:`ComparisonVerdicts`). :func:`human_comparison_verdicts` reads
``cohorts/<id>/human_comparisons.jsonl`` tolerantly: malformed lines are skipped and counted, and
the latest line of each (rater, essay A, essay B) wins; a rater is the judge ``human:<rater>``.

The columns are the contract's verdict frame: ``comparison_gen_id, essay_a, essay_b, judge,
template_id, replicate, round, verdict``. No Dagster here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ..data_layer import GensDataLayer, resolve_generation_metadata
from ..data_layer.paths import Paths
from ..ids import is_valid_gen_id
from .cohort import CohortNotFoundError
from .human_comparisons import (
    HUMAN_COMPARISONS_FILENAME,
    HUMAN_JUDGE_PREFIX,
    read_comparisons,
    verdict_rows,
)

__all__ = [
    "COMPARISON_STAGE",
    "HUMAN_COMPARISONS_FILENAME",
    "HUMAN_JUDGE_PREFIX",
    "VERDICT_SCHEMA",
    "ComparisonVerdicts",
    "comparison_gen_ids",
    "comparison_verdicts",
    "human_comparison_verdicts",
    "load_comparisons",
]

COMPARISON_STAGE = "comparison"
VERDICT_SCHEMA: dict[str, pl.DataType] = {
    "comparison_gen_id": pl.String(),
    "essay_a": pl.String(),
    "essay_b": pl.String(),
    "judge": pl.String(),
    "template_id": pl.String(),
    "replicate": pl.Int64(),
    "round": pl.Int64(),
    "verdict": pl.String(),
}
_VERDICTS = {"a": "A", "b": "B", "tie": "tie"}
_READ_WORKERS = 16


@dataclass(frozen=True)
class ComparisonVerdicts:
    """A cohort's parsed comparison verdicts and what was left out."""

    verdicts: pl.DataFrame
    """:data:`VERDICT_SCHEMA`, in membership order."""
    n_members: int
    """Comparisons the cohort lists."""
    skipped: dict[str, int]
    """Reason → comparisons left out (``not parsed``, ``bad verdict``, ``bad metadata``)."""

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


def _paths(data_root: str | os.PathLike[str] | Path) -> Paths:
    return Paths.from_str(data_root)


def comparison_gen_ids(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> list[str]:
    """Gen ids of the cohort's ``stage=comparison`` membership rows, in file order.

    Raises :class:`CohortNotFoundError` when the cohort has no membership file.
    """
    from ..cohorts import read_membership
    from ..errors import MembershipError

    if not is_valid_gen_id(cohort_id):
        raise CohortNotFoundError(f"invalid cohort id {cohort_id!r}")
    try:
        return list(read_membership(data_root, cohort_id)[COMPARISON_STAGE])
    except MembershipError as exc:
        raise CohortNotFoundError(str(exc)) from None


def _read_one(layer: GensDataLayer, gen_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """The verdict row of one comparison, or the reason it is left out. The metadata is read and
    checked by the data layer's own resolution (two different parents, replicate, round)."""
    try:
        meta = resolve_generation_metadata(layer, COMPARISON_STAGE, gen_id)
    except (FileNotFoundError, ValueError):
        return None, "bad metadata"
    try:
        parsed = layer.read_parsed(COMPARISON_STAGE, gen_id)
    except (FileNotFoundError, ValueError):
        return None, "not parsed"
    verdict = _VERDICTS.get(parsed.strip().lower())
    if verdict is None:
        return None, "bad verdict"
    essay_a, essay_b = meta.parent_gen_ids
    return {"comparison_gen_id": gen_id, "essay_a": essay_a, "essay_b": essay_b,
            "judge": meta.llm_model_id or "", "template_id": meta.template_id,
            "replicate": meta.replicate, "round": meta.round, "verdict": verdict}, None


def _read_all(layer: GensDataLayer, gen_ids: list[str]) -> Iterable[tuple[dict[str, Any] | None, str | None]]:
    if len(gen_ids) < 2 * _READ_WORKERS:
        return [_read_one(layer, g) for g in gen_ids]
    with ThreadPoolExecutor(max_workers=_READ_WORKERS) as pool:
        return list(pool.map(lambda g: _read_one(layer, g), gen_ids))


def load_comparisons(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> ComparisonVerdicts:
    """The cohort's parsed comparison verdicts with the count of those left out (see module docstring)."""
    layer = GensDataLayer.from_root(data_root)
    gen_ids = comparison_gen_ids(data_root, cohort_id)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for row, reason in _read_all(layer, gen_ids):
        if row is None:
            skipped[reason or "unknown"] = skipped.get(reason or "unknown", 0) + 1
        else:
            rows.append(row)
    return ComparisonVerdicts(pl.DataFrame(rows, schema=VERDICT_SCHEMA), len(gen_ids), skipped)


def comparison_verdicts(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> pl.DataFrame:
    """The cohort's parsed comparison verdicts (:data:`VERDICT_SCHEMA`); unusable ones left out."""
    return load_comparisons(data_root, cohort_id).verdicts


def human_comparison_verdicts(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> pl.DataFrame:
    """Human preferences from ``cohorts/<id>/human_comparisons.jsonl`` as verdict rows (judge
    ``human:<rater>``); the latest line per (rater, essay A, essay B) wins; malformed lines are
    skipped. Empty when the file does not exist."""
    return read_human_comparisons(data_root, cohort_id)[0]


def read_human_comparisons(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> tuple[pl.DataFrame, int]:
    """:func:`human_comparison_verdicts` and the number of malformed lines skipped, read by the
    store that writes the file (:mod:`.human_comparisons`: the same validation, one reader)."""
    found = read_comparisons(data_root, cohort_id)
    return verdict_rows(found.comparisons), found.skipped_lines


