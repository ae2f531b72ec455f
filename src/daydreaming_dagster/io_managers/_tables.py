"""Conventions shared by the table stores (DuckDB and SQL).

Layout, for an asset stored in schema ``S``:

- a polars frame goes into table ``S.<table_name>`` (see ``_naming``) with one extra column
  ``_row`` (the frame's row order, restored on load). A partitioned asset keeps all its
  partitions in that one table with a ``partition_key`` column; writing a partition deletes
  that partition's rows and inserts the new ones in one transaction. An unpartitioned asset's
  table is replaced on every write.
- a dict is stored as JSON text in the catalog table ``S.dagster_io_catalog``, which also
  records every stored frame (asset, partition, kind, row count, time), so a load can tell
  "never stored" from "stored with zero rows".
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from ..errors import ConfigError
from ._naming import PARTITION_COLUMN, ROW_COLUMN, StorageLocation

CATALOG_TABLE = "dagster_io_catalog"
UNPARTITIONED = ""  # catalog key for unpartitioned assets (NULL cannot sit in a primary key)
KIND_TABLE = "table"
KIND_JSON = "json"


def catalog_partition(location: StorageLocation) -> str:
    """Catalog value of the partition column for ``location``."""
    return UNPARTITIONED if location.partition_key is None else location.partition_key


def frame_for_table(location: StorageLocation, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame as stored: row order column, plus the partition column when partitioned."""
    reserved = {ROW_COLUMN} | ({PARTITION_COLUMN} if location.partition_key is not None else set())
    clash = reserved.intersection(frame.columns)
    if clash:
        raise ConfigError(
            f"{location.describe()}: column(s) {sorted(clash)} are reserved by the table IO managers; "
            "rename them in the asset's DataFrame"
        )
    if not frame.columns:
        raise ConfigError(
            f"{location.describe()}: a DataFrame without columns cannot be stored as a table"
        )
    stored = frame.with_row_index(ROW_COLUMN).with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))
    if location.partition_key is not None:
        stored = stored.with_columns(
            pl.lit(location.partition_key, dtype=pl.String).alias(PARTITION_COLUMN)
        )
    return stored


def frame_from_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Undo :func:`frame_for_table`: restore row order and drop the added columns."""
    if ROW_COLUMN in frame.columns:
        frame = frame.sort(ROW_COLUMN)
    return frame.drop([c for c in (ROW_COLUMN, PARTITION_COLUMN) if c in frame.columns])


def dump_dict(value: dict[str, Any]) -> str:
    """JSON text of a dict value (insertion order kept)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def load_dict(text: str, where: str) -> dict[str, Any]:
    """Parse a stored dict, naming ``where`` when it is not a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON stored for {where}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object stored for {where}, found {type(value).__name__}")
    return value


def merge_partition(
    existing: pl.DataFrame, new_rows: pl.DataFrame, partition_key: str
) -> pl.DataFrame:
    """All other partitions' rows plus ``new_rows``, aligning columns that differ (used when a
    partition arrives with a schema the table does not have yet)."""
    others = existing.filter(pl.col(PARTITION_COLUMN) != partition_key)
    return pl.concat([others, new_rows], how="diagonal_relaxed")
