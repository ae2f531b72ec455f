"""Report figures rendered ahead of time, looked up by the content of their inputs.

Rendering the report's four PNGs (and importing Matplotlib for them) takes about 1.5 s of a
demo's results run. The analysis child process (``analysis/_prefetch.py``) renders them while
the results run works on other steps, and hands them over with its analysis; the report then
finds each figure here under a key made of everything it was drawn from, and renders only
what is missing. A figure drawn from other inputs has another key, so a stale figure cannot
be used.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict

import polars as pl

FIGURES_KEPT = 32
"""Figures kept in this process (a report has four; a few recent reports' worth)."""

_FIGURES: OrderedDict[str, bytes | None] = OrderedDict()
_LOCK = threading.Lock()


def content_key(kind: str, *parts: str | bytes) -> str:
    """A key for a figure of ``kind`` drawn from ``parts`` (each length-prefixed, so no two
    different part lists hash alike)."""
    digest = hashlib.sha256()
    for part in (kind, *parts):
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def frame_bytes(frame: pl.DataFrame) -> bytes:
    """``frame`` as Arrow IPC bytes (schema and values), for :func:`content_key`."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


def remember(key: str, png: bytes | None) -> None:
    """Keep the figure drawn for ``key`` (``None``: the inputs make no figure)."""
    with _LOCK:
        _FIGURES[key] = png
        _FIGURES.move_to_end(key)
        while len(_FIGURES) > FIGURES_KEPT:
            _FIGURES.popitem(last=False)


def recall(key: str) -> tuple[bool, bytes | None]:
    """``(True, png)`` when a figure was kept for ``key``, else ``(False, None)``."""
    with _LOCK:
        if key in _FIGURES:
            return True, _FIGURES[key]
    return False, None


def forget_figures() -> None:
    """Drop every kept figure."""
    with _LOCK:
        _FIGURES.clear()
