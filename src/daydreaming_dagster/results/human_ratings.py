r"""Human ratings of essays: ``cohorts/<cohort_id>/human_ratings.jsonl`` (DESIGN §7).

A rating is one JSON object per line::

    {"essay_gen_id": "e_…", "rater": "ada", "score": 7.0, "scale": "0-10",
     "note": "…", "timestamp": "2026-12-01T22:40:00+00:00", "blind": true}

The file is append-only: a rater who rates an essay again adds a line, and the latest line of a
(rater, essay) pair is that rater's rating (:func:`latest_ratings`). Each append is one
``write`` of one line, flushed and fsynced before it returns, so a rating that was
acknowledged survives a crash. A crash in the middle of an append can leave a torn last line;
readers skip it (and count it) and the next append starts on a fresh line, so it never glues a
new rating onto the torn one.

Lines are pure ASCII: every other character of a note is written as a JSON ``\uXXXX`` escape.
A raw U+2028, U+0085 or form feed would be a line end for readers that split lines the way
Python's ``str.splitlines`` does, and the rating would be lost to them; escaped, every reader
sees one rating per ``\n``-terminated line. :func:`read_ratings` splits on ``\n`` only, so files
written raw by earlier versions read correctly too.

Object stores cannot append: an append there reads the object and writes it back whole. Two
writers interleaving would lose one rating, so an append holds a lock: a thread lock within the
process and, across processes, a lock object created exclusively next to the file
(``human_ratings.jsonl.lock``, the store's create-if-absent write) and deleted afterwards. A
lock left by a crashed writer is broken after :data:`STALE_LOCK_SECONDS`.

In the analysis each rater is one more evaluator, named ``human/<rater>``
(:func:`human_evaluator`). No Dagster here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ..data_layer.paths import Paths
from ..errors import DaydreamError
from ..ids import ensure_gen_id
from ._jsonl_log import (  # the limits stay importable from here
    LOCK_WAIT_SECONDS,  # noqa: F401
    MAX_NOTE_CHARS,  # noqa: F401
    STALE_LOCK_SECONDS,  # noqa: F401
    append_line,
    checked_note,
    checked_rater,
    json_line,
    read_records,
)
from .scales import scale_bounds

__all__ = [
    "HUMAN_EVALUATOR_PREFIX",
    "HUMAN_RATING_SCHEMA",
    "HumanRating",
    "HumanRatingError",
    "RatingsFile",
    "append_rating",
    "rating_line",
    "human_evaluator",
    "latest_ratings",
    "ratings_frame",
    "read_ratings",
]

HUMAN_EVALUATOR_PREFIX = "human/"

HUMAN_RATING_SCHEMA: dict[str, pl.DataType] = {
    "essay_gen_id": pl.String(),
    "rater": pl.String(),
    "evaluator": pl.String(),
    "score": pl.Float64(),
    "scale": pl.String(),
    "note": pl.String(),
    "timestamp": pl.String(),
    "blind": pl.Boolean(),
}
"""Columns of :func:`ratings_frame`."""


class HumanRatingError(DaydreamError, ValueError):
    """A rating that cannot be stored (bad rater name, score off the scale, bad essay id)."""


@dataclass(frozen=True)
class HumanRating:
    """One human judgement of one essay."""

    essay_gen_id: str
    """The rated essay's generation id."""
    rater: str
    """Who rated it (1-64 letters, digits, space, ``_ . @ -``)."""
    score: float
    """The score, within ``scale``."""
    scale: str
    """The scale the rater was shown, ``<low>-<high>`` (the cohort's evaluation scale)."""
    note: str = ""
    """Free text; may be empty."""
    timestamp: str = ""
    """When it was given, ISO 8601 in UTC (filled by :func:`append_rating` when empty)."""
    blind: bool = False
    """True when the rater did not see LLM scores, models or templates."""

    def validated(self) -> HumanRating:
        """Return this rating (timestamp filled in) or raise :class:`HumanRatingError`."""
        try:
            ensure_gen_id(self.essay_gen_id)
        except ValueError as exc:
            raise HumanRatingError(f"human rating: {exc}") from None
        rater = checked_rater(self.rater, HumanRatingError, "human rating")
        try:
            low, high = scale_bounds(self.scale)
        except ValueError as exc:
            raise HumanRatingError(f"human rating: {exc}") from None
        score = float(self.score)
        if not (low <= score <= high):
            raise HumanRatingError(
                f"human rating: score {self.score!r} is outside the scale {self.scale} "
                f"(use a number from {low:g} to {high:g})"
            )
        note = checked_note(self.note, HumanRatingError, "human rating")
        timestamp = self.timestamp or datetime.now(UTC).isoformat(timespec="seconds")
        return HumanRating(
            essay_gen_id=self.essay_gen_id,
            rater=rater,
            score=score,
            scale=self.scale.strip(),
            note=note,
            timestamp=timestamp,
            blind=bool(self.blind),
        )


def human_evaluator(rater: str) -> str:
    """The evaluator label of a rater in scores and the analysis: ``human/<rater>``."""
    return f"{HUMAN_EVALUATOR_PREFIX}{rater}"


@dataclass(frozen=True)
class RatingsFile:
    """What :func:`read_ratings` found: the ratings in file order and how many lines it skipped."""

    ratings: tuple[HumanRating, ...]
    skipped_lines: int


def _ratings_path(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> Path:
    return Paths.from_str(data_root).cohort_human_ratings_path(cohort_id)


def rating_line(rating: HumanRating) -> bytes:
    """One stored line: key-sorted JSON, ASCII only (``\\uXXXX`` escapes), ``\\n``-terminated."""
    return json_line(asdict(rating))


def append_rating(data_root: str | os.PathLike[str] | Path, cohort_id: str, rating: HumanRating) -> HumanRating:
    """Validate ``rating`` and append it to the cohort's ratings file; return what was stored.

    The line is written with one ``write`` and fsynced before this returns (on an object store:
    read, extended and written back under the append lock). Raises :class:`HumanRatingError`
    for an invalid rating (nothing is written then), or when the object-store lock cannot be
    taken within :data:`LOCK_WAIT_SECONDS`.
    """
    stored = rating.validated()
    append_line(_ratings_path(data_root, cohort_id), rating_line(stored), HumanRatingError, "human rating")
    return stored


def _rating_from_json(text: str) -> HumanRating | None:
    try:
        data = json.loads(text)
        return HumanRating(
            essay_gen_id=str(data["essay_gen_id"]),
            rater=str(data["rater"]),
            score=float(data["score"]),
            scale=str(data["scale"]),
            note=str(data.get("note") or ""),
            timestamp=str(data.get("timestamp") or ""),
            blind=bool(data.get("blind", False)),
        ).validated()
    except (ValueError, KeyError, TypeError, HumanRatingError):
        return None


def read_ratings(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> RatingsFile:
    """Every rating in the cohort's file, in file order (empty when the file does not exist).

    Lines that are not a valid rating (a line torn by a crash, a hand edit gone wrong) are
    skipped and counted in ``skipped_lines``.
    """
    ratings, skipped = read_records(_ratings_path(data_root, cohort_id), _rating_from_json)
    return RatingsFile(ratings=tuple(ratings), skipped_lines=skipped)


def latest_ratings(ratings: tuple[HumanRating, ...] | list[HumanRating]) -> list[HumanRating]:
    """The latest rating of each (rater, essay) pair, in order of first appearance."""
    latest: dict[tuple[str, str], HumanRating] = {}
    for rating in ratings:
        latest[(rating.rater, rating.essay_gen_id)] = rating
    return list(latest.values())


def ratings_frame(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> pl.DataFrame:
    """The current human ratings of a cohort (:data:`HUMAN_RATING_SCHEMA`), latest per rater and essay."""
    current = latest_ratings(read_ratings(data_root, cohort_id).ratings)
    rows = [{**asdict(r), "evaluator": human_evaluator(r.rater)} for r in current]
    return pl.DataFrame(rows, schema=HUMAN_RATING_SCHEMA)
