"""Low-level file operations that work on local paths and on fsspec (UPath) roots.

Local writes are atomic: a temporary file in the same directory, flushed and fsynced, then
``os.replace``d over the target, so a crash leaves the old file or none, never a truncated
one. On object storage a single PUT of the whole object gives the same guarantee.

An fsync per file costs about a millisecond of disk commit, which dominates when a batch writes
thousands of small files. Batches therefore write with ``fsync=False`` and make the whole group
durable with one :func:`flush_to_disk` before they report the files as written (group commit).
Without the per-file fsync the rename can reach the disk before the data (a power cut may
leave an empty file); the batch's flush closes that window before anything relies on the files.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

# Indirection so tests can make the rename fail and check nothing is half-written.
_replace = os.replace


def is_local(path: Path) -> bool:
    """True for plain filesystem paths (including UPath's local flavours)."""
    protocol = getattr(path, "protocol", "")
    return protocol in ("", "file", "local")


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see the old content or the new, never a mix.

    ``fsync=False`` leaves durability to a later :func:`flush_to_disk` (local files only).
    """
    if not is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # one PUT: object stores publish whole objects only
        return
    tmp_name = _write_temp_beside(path, data, fsync=fsync)
    try:
        _replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _write_temp_beside(path: Path, data: bytes, *, fsync: bool) -> str:
    """A new temporary file next to ``path`` holding ``data``; return its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = _create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return tmp_name


def create_exclusive(path: Path, data: bytes, *, fsync: bool = True) -> bool:
    """Create ``path`` holding ``data`` only if nothing exists there; return whether this call
    created it. The first of several processes racing to create the same file wins and every
    reader sees its whole content (never a partial file):

    - local disks: the content goes to a temporary file that is then hard-linked to ``path``
      (``link`` fails when the target exists, atomically);
    - object stores: one conditional PUT (``If-None-Match: *``), which S3, MinIO and moto
      refuse with 412 when the key exists.

    ``fsync=False`` leaves durability to a later :func:`flush_to_disk`, as for
    :func:`atomic_write_bytes`.
    """
    if not is_local(path):
        return _create_exclusive_object(path, data)
    tmp_name = _write_temp_beside(path, data, fsync=fsync)
    try:
        os.link(tmp_name, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    return True


def _create_exclusive_object(path: Path, data: bytes) -> bool:
    fs = path.fs  # type: ignore[attr-defined]
    try:
        fs.pipe_file(path.path, data, mode="create")  # type: ignore[attr-defined]
    except OSError as exc:
        if _precondition_failed(exc):
            return False
        raise
    return True


def _precondition_failed(exc: BaseException) -> bool:
    """True when an object store refused a conditional write (HTTP 412 / PreconditionFailed);
    s3fs reports it as ``OSError(EINVAL)`` with the botocore error as its cause."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause)
        if "PreconditionFailed" in text or "412" in text or "pre-conditions" in text:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def object_version(path: Path) -> str | None:
    """An opaque version of the object at ``path`` (its ETag) for :func:`replace_if_version`;
    ``None`` when it does not exist. Object stores only."""
    fs = path.fs  # type: ignore[attr-defined]
    try:
        info = fs.info(path.path, refresh=True)  # type: ignore[attr-defined]
    except FileNotFoundError:
        return None
    etag = info.get("ETag") or info.get("etag")
    return str(etag) if etag else None


def replace_if_version(path: Path, data: bytes, version: str) -> bool:
    """Overwrite the object at ``path`` only if it is still at ``version`` (``If-Match``: a
    compare-and-swap); return whether it was replaced. Object stores only."""
    fs = path.fs  # type: ignore[attr-defined]
    fs.invalidate_cache(path.path)  # type: ignore[attr-defined]
    try:
        fs.pipe_file(path.path, data, IfMatch=version)  # type: ignore[attr-defined]
    except (OSError, FileNotFoundError) as exc:
        if isinstance(exc, FileNotFoundError) or _precondition_failed(exc):
            return False
        raise
    return True


def _create_temp_beside(path: Path) -> tuple[int, str]:
    """Open a new exclusive temporary file next to ``path``.

    Unlike ``tempfile.mkstemp`` (always 0600) the mode is 0666 minus the umask, as for any file
    ``open`` creates, so the artefact the rename publishes is readable by whoever may read the
    data root (a webserver running as another user, a shared store).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp_name = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp_name, flags, 0o666), tmp_name
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}")


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def flush_to_disk(path: Path) -> None:
    """Make every write so far under ``path`` durable: one ``sync`` for a whole group of
    ``fsync=False`` writes (object stores need nothing: a PUT is durable when it returns)."""
    if is_local(path):
        os.sync()


def dump_json(data: dict[str, Any]) -> str:
    """Pretty, key-sorted, UTF-8-friendly JSON with a trailing newline (diffable on disk)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def read_text(path: Path) -> str:
    """Read UTF-8 text; a missing file raises ``FileNotFoundError`` naming the path, bytes
    that are not UTF-8 raise ``ValueError`` naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise FileNotFoundError(f"expected a file but found a directory: {path}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The bare codec error names neither the file nor what to do about it.
        raise ValueError(
            f"{path} is not valid UTF-8 (byte {exc.start}: {exc.reason}); re-save it as UTF-8"
        ) from None


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON object; malformed JSON or a non-object raises ``ValueError`` naming the file."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON in {path}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object in {path}, found {type(data).__name__}")
    return data


def remove_file(path: Path) -> bool:
    """Delete ``path`` if present; return whether something was removed."""
    if not is_local(path):
        # Object stores delete a missing key without complaint, so ask first.
        if not path.is_file():
            return False
        path.unlink()
        return True
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def remove_tree(path: Path) -> bool:
    """Delete a directory tree if present; return whether something was removed."""
    if not path.exists():
        return False
    if is_local(path):
        shutil.rmtree(path)
    else:
        path.fs.rm(path.path, recursive=True)  # type: ignore[attr-defined]
    return True


def append_line(path: Path, line: str) -> None:
    """Append one line (a newline is added); used for debugging logs, not for artefacts."""
    text = line.rstrip("\n") + "\n"
    if is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        return
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, previous + text)
