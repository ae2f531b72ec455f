r"""Human pairwise preferences: ``cohorts/<cohort_id>/human_comparisons.jsonl`` (issue 20).

A person reads two essays side by side (A on the left, B on the right, as the compare page shows
them) and says which is better. One JSON object per line::

    {"id": "h_…", "essay_a": "e_…", "essay_b": "e_…", "preference": "A", "rater": "ada",
     "note": "…", "created_at": "2026-12-01T22:40:00+00:00"}

The guarantees are those of ``human_ratings.jsonl`` (the same code, ``_jsonl_log.py``): a
preference is validated before anything is written; the append is one fsynced ``write`` of one
ASCII line (on object stores a whole-object rewrite under the append lock), so a preference
accepted is a preference kept; lines that are not a valid preference (torn by a crash, edited by
hand) are skipped and counted on read; the latest line of a (rater, essay A, essay B) triple is
that rater's preference for the pair *as shown* (the same pair shown in the other order is
another question, as it is for the LLM judges).

In the analysis each rater is one more judge, ``human:<rater>``, in the verdict frame
(:func:`human_comparisons_frame`). No Dagster here.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import polars as pl

from ..data_layer.paths import Paths
from ..errors import DaydreamError
from ..ids import ensure_gen_id
from ._jsonl_log import append_line, checked_note, checked_rater, json_line, read_records

__all__ = [
    "HUMAN_COMPARISONS_FILENAME",
    "HUMAN_JUDGE_PREFIX",
    "PREFERENCES",
    "verdict_rows",
    "ComparisonsFile",
    "HumanComparison",
    "HumanComparisonError",
    "Preference",
    "append_comparison",
    "human_comparisons_frame",
    "human_comparisons_path",
    "human_judge",
    "latest_comparisons",
    "normalise_preference",
    "read_comparisons",
]

HUMAN_COMPARISONS_FILENAME = "human_comparisons.jsonl"
HUMAN_JUDGE_PREFIX = "human:"
HUMAN_TEMPLATE = "human"
"""``template_id`` of a human verdict (a person is shown the two essays, not a template)."""
Preference = Literal["A", "B", "tie"]
PREFERENCES: tuple[Preference, ...] = ("A", "B", "tie")
_ID_PREFIX = "h_"
_WHAT = "human preference"



class HumanComparisonError(DaydreamError, ValueError):
    """A preference that cannot be stored (bad essay ids, preference, rater or note)."""


def human_judge(rater: str) -> str:
    """The judge label of a rater in the verdict frame: ``human:<rater>``."""
    return f"{HUMAN_JUDGE_PREFIX}{rater}"


def normalise_preference(value: object) -> Preference:
    """``"A"``, ``"B"`` or ``"tie"`` from any case of those words, else :class:`HumanComparisonError`."""
    text = value.strip() if isinstance(value, str) else ""
    for preference in PREFERENCES:
        if text.lower() == preference.lower():
            return preference
    raise HumanComparisonError(f"{_WHAT}: preference {value!r} is not one of A, B, tie")


@dataclass(frozen=True)
class HumanComparison:
    """One person's judgement of one pair of essays, in the order they were shown."""

    essay_a: str
    """The essay shown first (left, "A")."""
    essay_b: str
    """The essay shown second (right, "B")."""
    preference: str
    """``A``, ``B`` or ``tie``."""
    rater: str
    """Who judged (1-64 letters, digits, space, ``_ . @ -``)."""
    note: str = ""
    """Free text, at most :data:`~._jsonl_log.MAX_NOTE_CHARS` characters; may be empty."""
    created_at: str = ""
    """When it was given, ISO 8601 in UTC (filled by :func:`append_comparison` when empty)."""
    id: str = ""
    """This record's id (``h_`` + 16 hex digits, filled by :func:`append_comparison` when empty)."""

    def validated(self) -> HumanComparison:
        """Return this preference (id, time and canonical preference filled in) or raise
        :class:`HumanComparisonError` saying what is wrong."""
        for side, essay in (("essay_a", self.essay_a), ("essay_b", self.essay_b)):
            try:
                ensure_gen_id(essay)
            except ValueError as exc:
                raise HumanComparisonError(f"{_WHAT}: {side}: {exc}") from None
        if self.essay_a == self.essay_b:
            raise HumanComparisonError(f"{_WHAT}: essay_a and essay_b are the same essay {self.essay_a!r}")
        record_id = self.id or f"{_ID_PREFIX}{secrets.token_hex(8)}"
        try:
            ensure_gen_id(record_id)
        except ValueError as exc:
            raise HumanComparisonError(f"{_WHAT}: id: {exc}") from None
        created_at = self.created_at or datetime.now(UTC).isoformat(timespec="seconds")
        if not isinstance(created_at, str):
            raise HumanComparisonError(f"{_WHAT}: created_at must be an ISO 8601 time, not {created_at!r}")
        return HumanComparison(
            essay_a=self.essay_a,
            essay_b=self.essay_b,
            preference=normalise_preference(self.preference),
            rater=checked_rater(self.rater, HumanComparisonError, _WHAT),
            note=checked_note(self.note, HumanComparisonError, _WHAT),
            created_at=created_at,
            id=record_id,
        )


@dataclass(frozen=True)
class ComparisonsFile:
    """What :func:`read_comparisons` found: the preferences in file order and how many lines it
    skipped."""

    comparisons: tuple[HumanComparison, ...]
    skipped_lines: int


def human_comparisons_path(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> Path:
    """``cohorts/<cohort_id>/human_comparisons.jsonl`` (the cohort id is validated)."""
    return Paths.from_str(data_root).cohort_dir(ensure_gen_id(cohort_id)) / HUMAN_COMPARISONS_FILENAME


def append_comparison(
    data_root: str | os.PathLike[str] | Path, cohort_id: str, comparison: HumanComparison
) -> HumanComparison:
    """Validate ``comparison`` and append it to the cohort's file; return what was stored.

    Written with one fsynced ``write`` (object stores: under the append lock) before this
    returns. Raises :class:`HumanComparisonError` for an invalid preference (nothing is written)
    or when the object-store lock cannot be taken in time. Whether the essays belong to the
    cohort is the caller's check (the explorer checks membership before calling).
    """
    stored = comparison.validated()
    append_line(human_comparisons_path(data_root, cohort_id), json_line(asdict(stored)), HumanComparisonError, _WHAT)
    return stored


def _comparison_from_json(text: str) -> HumanComparison | None:
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not data.get("id") or not data.get("created_at"):
            return None
        return HumanComparison(
            essay_a=str(data["essay_a"]),
            essay_b=str(data["essay_b"]),
            preference=str(data["preference"]),
            rater=str(data["rater"]),
            note=str(data.get("note") or ""),
            created_at=str(data["created_at"]),
            id=str(data["id"]),
        ).validated()
    except (ValueError, KeyError, TypeError, HumanComparisonError):
        return None


def read_comparisons(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> ComparisonsFile:
    """Every preference in the cohort's file, in file order (empty when there is no file).

    Lines that are not a valid preference are skipped and counted in ``skipped_lines``.
    """
    found, skipped = read_records(human_comparisons_path(data_root, cohort_id), _comparison_from_json)
    return ComparisonsFile(comparisons=tuple(found), skipped_lines=skipped)


def latest_comparisons(comparisons: tuple[HumanComparison, ...] | list[HumanComparison]) -> list[HumanComparison]:
    """The latest preference of each (rater, essay A, essay B as shown), in order of first
    appearance of the triple."""
    latest: dict[tuple[str, str, str], HumanComparison] = {}
    for record in comparisons:
        latest[(record.rater, record.essay_a, record.essay_b)] = record
    return list(latest.values())


def verdict_rows(comparisons: tuple[HumanComparison, ...] | list[HumanComparison]) -> pl.DataFrame:
    """The latest of ``comparisons`` per (rater, pair as shown) as verdict-frame rows
    (:data:`~.comparisons.VERDICT_SCHEMA`): ``judge`` = ``human:<rater>``, ``comparison_gen_id`` =
    the record id, ``template_id`` = ``human``, ``replicate`` 1, ``round`` 0."""
    from .comparisons import VERDICT_SCHEMA

    rows = [
        {
            "comparison_gen_id": record.id,
            "essay_a": record.essay_a,
            "essay_b": record.essay_b,
            "judge": human_judge(record.rater),
            "template_id": HUMAN_TEMPLATE,
            "replicate": 1,
            "round": 0,
            "verdict": record.preference,
        }
        for record in latest_comparisons(comparisons)
    ]
    return pl.DataFrame(rows, schema=VERDICT_SCHEMA)


def human_comparisons_frame(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> pl.DataFrame:
    """The cohort's current human preferences as verdict-frame rows (:func:`verdict_rows`)."""
    return verdict_rows(read_comparisons(data_root, cohort_id).comparisons)
