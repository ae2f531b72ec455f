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

import contextlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from ..data_layer._storage import is_local
from ..data_layer.paths import Paths
from ..errors import DaydreamError
from ..ids import ensure_gen_id
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
MAX_NOTE_CHARS = 10_000
STALE_LOCK_SECONDS = 30.0
"""Age after which an object-store lock is taken to be left by a crashed writer."""
LOCK_WAIT_SECONDS = 60.0
"""How long an append waits for the object-store lock before giving up."""
# Rater names become evaluator labels, CSV cells and HTML text: keep them short and plain.
_RATER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}$")

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
        if not isinstance(self.rater, str) or not _RATER.fullmatch(self.rater.strip()):
            raise HumanRatingError(
                f"human rating: invalid rater name {self.rater!r}: use 1-64 letters, digits, "
                "spaces or '_ . @ -', starting with a letter or digit"
            )
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
        note = self.note or ""
        if len(note) > MAX_NOTE_CHARS:
            raise HumanRatingError(f"human rating: note is longer than {MAX_NOTE_CHARS} characters")
        try:
            note.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate is not text: no UTF-8 reader (polars, the analysis) could load it.
            raise HumanRatingError("human rating: note holds characters that are not valid Unicode text "
                                   "(lone surrogates)") from None
        timestamp = self.timestamp or datetime.now(UTC).isoformat(timespec="seconds")
        return HumanRating(
            essay_gen_id=self.essay_gen_id,
            rater=self.rater.strip(),
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
    return (json.dumps(asdict(rating), ensure_ascii=True, sort_keys=True) + "\n").encode("ascii")


def append_rating(data_root: str | os.PathLike[str] | Path, cohort_id: str, rating: HumanRating) -> HumanRating:
    """Validate ``rating`` and append it to the cohort's ratings file; return what was stored.

    The line is written with one ``write`` and fsynced before this returns (on an object store:
    read, extended and written back under the append lock). Raises :class:`HumanRatingError`
    for an invalid rating (nothing is written then), or when the object-store lock cannot be
    taken within :data:`LOCK_WAIT_SECONDS`.
    """
    stored = rating.validated()
    path = _ratings_path(data_root, cohort_id)
    line = rating_line(stored)
    if not is_local(path):
        with _append_lock(path):
            previous = path.read_bytes() if path.exists() else b""
            if previous and not previous.endswith(b"\n"):
                previous += b"\n"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(previous + line)  # one PUT: object stores publish whole objects only
        return stored
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # close a line torn by an earlier crash
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return stored


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _append_lock(path: Path) -> Iterator[None]:
    """Hold the append lock of an object-store ratings file (this process's threads, then other
    processes through the exclusively created lock object)."""
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    with thread_lock:
        lock = path.with_name(path.name + ".lock")
        fs, key = lock.fs, lock.path  # type: ignore[attr-defined]
        owner = secrets.token_hex(8).encode("ascii")
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                with fs.open(key, "xb") as handle:  # create-if-absent (S3: If-None-Match: *)
                    handle.write(owner)
                break
            except FileExistsError:
                _break_stale_lock(fs, key)
                if time.monotonic() > deadline:
                    raise HumanRatingError(
                        f"human rating: {lock} has been held for over {LOCK_WAIT_SECONDS:.0f} s by another "
                        "writer; try again, or delete the lock object if no explorer is running"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(key)


def _break_stale_lock(fs: object, key: str) -> None:
    """Remove a lock object older than :data:`STALE_LOCK_SECONDS` (its writer crashed)."""
    try:
        modified = fs.modified(key)  # type: ignore[attr-defined]
    except (FileNotFoundError, NotImplementedError, OSError):
        return
    age = time.time() - modified.timestamp()
    if age > STALE_LOCK_SECONDS:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(key)  # type: ignore[attr-defined]


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
    path = _ratings_path(data_root, cohort_id)
    if not path.exists():
        return RatingsFile(ratings=(), skipped_lines=0)
    ratings: list[HumanRating] = []
    skipped = 0
    # "\n" only: str.splitlines would also split at U+2028, U+0085, \f… inside a note written raw.
    for chunk in path.read_bytes().split(b"\n"):
        text = chunk.decode("utf-8", errors="replace")
        if not text.strip():
            continue
        rating = _rating_from_json(text)
        if rating is None:
            skipped += 1
        else:
            ratings.append(rating)
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
