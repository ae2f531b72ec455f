r"""Append-only JSON-lines files of human judgements (ratings, pairwise preferences).

What both ``human_ratings.jsonl`` and ``human_comparisons.jsonl`` need, in one place:

- :func:`append_line`: one ``\n``-terminated line written with one ``write`` and fsynced before
  it returns (a torn last line left by a crash is closed first, so a new record is never glued
  onto it). Object stores cannot append: there the file is read and written back whole under
  :func:`append_lock` (a thread lock, then a lock object created exclusively next to the file,
  broken after :data:`STALE_LOCK_SECONDS`).
- :func:`json_line`: key-sorted JSON, ASCII only, so a U+2028, U+0085 or form feed in a note
  cannot split a record for any reader.
- :func:`read_lines`: the file's lines split on ``\n`` only.
- :func:`checked_rater` / :func:`checked_note`: the shared rules for names and notes.

No Dagster here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..data_layer._storage import is_local

__all__ = [
    "LOCK_WAIT_SECONDS",
    "MAX_NOTE_CHARS",
    "STALE_LOCK_SECONDS",
    "append_line",
    "append_lock",
    "checked_note",
    "checked_rater",
    "json_line",
    "read_lines",
]

MAX_NOTE_CHARS = 10_000
"""Longest note a person may attach to a rating or a preference."""
STALE_LOCK_SECONDS = 30.0
"""Age after which an object-store lock is taken to be left by a crashed writer."""
LOCK_WAIT_SECONDS = 60.0
"""How long an append waits for the object-store lock before giving up."""
# Rater names become evaluator labels, CSV cells and HTML text: keep them short and plain.
RATER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}$")


def checked_rater(rater: object, error: type[Exception], what: str) -> str:
    """``rater`` stripped, or ``error`` naming the allowed characters (``what`` prefixes it)."""
    if not isinstance(rater, str) or not RATER_PATTERN.fullmatch(rater.strip()):
        raise error(
            f"{what}: invalid rater name {rater!r}: use 1-64 letters, digits, "
            "spaces or '_ . @ -', starting with a letter or digit"
        )
    return rater.strip()


def checked_note(note: object, error: type[Exception], what: str) -> str:
    """``note`` (``""`` for none) when it is text of at most :data:`MAX_NOTE_CHARS` characters."""
    note = note or ""
    if not isinstance(note, str):
        raise error(f"{what}: note must be text, not {type(note).__name__}")
    if len(note) > MAX_NOTE_CHARS:
        raise error(f"{what}: note is longer than {MAX_NOTE_CHARS} characters ({len(note)})")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate is not text: no UTF-8 reader (polars, the analysis) could load it.
        raise error(f"{what}: note holds characters that are not valid Unicode text (lone surrogates)") from None
    return note


def json_line(record: Mapping[str, Any]) -> bytes:
    """One stored line: key-sorted JSON, ASCII only (``\\uXXXX`` escapes), ``\\n``-terminated."""
    return (json.dumps(dict(record), ensure_ascii=True, sort_keys=True) + "\n").encode("ascii")


def append_line(path: Path, line: bytes, error: type[Exception], what: str) -> None:
    """Append ``line`` (one ``\\n``-terminated record) to ``path`` durably.

    Local files: ``O_APPEND`` with one ``write``, fsynced. Object stores: read, extend and
    write back whole under :func:`append_lock`, which raises ``error`` when the lock cannot be
    taken within :data:`LOCK_WAIT_SECONDS`.
    """
    if not is_local(path):
        with append_lock(path, error, what):
            previous = path.read_bytes() if path.exists() else b""
            if previous and not previous.endswith(b"\n"):
                previous += b"\n"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(previous + line)  # one PUT: object stores publish whole objects only
        return
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


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def append_lock(path: Path, error: type[Exception], what: str) -> Iterator[None]:
    """Hold the append lock of an object-store file (this process's threads, then other
    processes through the exclusively created ``<file>.lock`` object)."""
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
                    raise error(
                        f"{what}: {lock} has been held for over {LOCK_WAIT_SECONDS:.0f} s by another "
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


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of ``path`` (``[]`` when it does not exist), split on ``\\n`` only:
    ``str.splitlines`` would also split at U+2028, U+0085, ``\\f``… inside a note written raw."""
    if not path.exists():
        return []
    lines = (chunk.decode("utf-8", errors="replace") for chunk in path.read_bytes().split(b"\n"))
    return [line for line in lines if line.strip()]


Record = TypeVar("Record")


def read_records(path: Path, parse: Callable[[str], Record | None]) -> tuple[list[Record], int]:
    """Every line of ``path`` that ``parse`` accepts, in file order, and how many lines it
    refused (a line torn by a crash, a hand edit gone wrong): readers skip and count them."""
    records: list[Record] = []
    skipped = 0
    for text in read_lines(path):
        record = parse(text)
        if record is None:
            skipped += 1
        else:
            records.append(record)
    return records, skipped
