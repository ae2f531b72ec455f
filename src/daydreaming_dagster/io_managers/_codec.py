"""Byte encodings shared by the file and object stores: dicts as JSON, frames as Parquet."""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl

JSON_EXTENSION = "json"
PARQUET_EXTENSION = "parquet"
EXTENSIONS = (PARQUET_EXTENSION, JSON_EXTENSION)


def extension_for(obj: dict | pl.DataFrame) -> str:
    """``parquet`` for a polars frame, ``json`` for a dict."""
    return PARQUET_EXTENSION if isinstance(obj, pl.DataFrame) else JSON_EXTENSION


def encode(obj: dict | pl.DataFrame) -> bytes:
    """Serialise a dict (pretty JSON, insertion order kept) or a frame (Parquet)."""
    if isinstance(obj, pl.DataFrame):
        buffer = io.BytesIO()
        obj.write_parquet(buffer)
        return buffer.getvalue()
    return (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def decode(extension: str, data: bytes, where: str) -> dict[str, Any] | pl.DataFrame:
    """Inverse of :func:`encode`; ``where`` names the file/object in error messages."""
    if extension == PARQUET_EXTENSION:
        return pl.read_parquet(io.BytesIO(data))
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed JSON in {where}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object in {where}, found {type(value).__name__}")
    return value


def row_count(obj: dict | pl.DataFrame) -> int | None:
    """Rows of a frame (``None`` for a dict), for Dagster metadata."""
    return obj.height if isinstance(obj, pl.DataFrame) else None
