"""CSV export of results tables under ``results/<cohort_id>/``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from ..data_layer import Paths, _storage

__all__ = ["export_tables", "write_csv"]


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV atomically (readers never see half a file); return ``path``."""
    _storage.atomic_write_text(path, frame.write_csv())
    return path


def export_tables(
    data_root: str | os.PathLike[str] | Path, cohort_id: str, tables: Mapping[str, pl.DataFrame]
) -> dict[str, Path]:
    """Write each table as ``results/<cohort_id>/<name>.csv``; return name → path."""
    directory = Paths.from_str(data_root).cohort_results_dir(cohort_id)
    written = {}
    for name, frame in tables.items():
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"table name {name!r} cannot be a file name")
        written[name] = write_csv(frame, directory / f"{name}.csv")
    return written
