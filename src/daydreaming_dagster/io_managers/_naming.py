"""The one place that turns an asset key and partition into a storage location.

Every IO manager names what it stores through :func:`storage_location`, so a file path, an
S3 key, a table name and a graph database path for the same asset always agree:

==================  ==========================================  ==============================
what                unpartitioned asset ``["results", "scores"]``  partition ``c1`` of that asset
==================  ==========================================  ==============================
file / object       ``results/scores.json`` (or ``.parquet``)    ``results/scores/c1.json``
SQL/DuckDB table    ``results__scores``                          same table, rows with
                                                                  ``partition_key = 'c1'``
graph database      ``results/scores.kuzu``                      ``results/scores/c1.kuzu``
==================  ==========================================  ==============================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError

# Partition keys become path segments; anything that could escape a directory is refused.
_FORBIDDEN_IN_KEY = re.compile(r"[/\\\x00-\x1f]")
_NON_IDENTIFIER = re.compile(r"[^0-9a-zA-Z_]+")

# Column names the table stores add; a DataFrame may not use them itself.
PARTITION_COLUMN = "partition_key"
ROW_COLUMN = "_row"


@dataclass(frozen=True)
class StorageLocation:
    """Where one asset (partition) lives, in every backend's vocabulary."""

    asset_path: tuple[str, ...]
    """The asset key's path components."""
    partition_key: str | None
    """The partition key, or ``None`` for an unpartitioned asset."""

    @property
    def asset_name(self) -> str:
        """The asset key as ``a/b`` (used in catalogs and messages)."""
        return "/".join(self.asset_path)

    @property
    def relpath(self) -> str:
        """Relative path without extension: ``a/b`` or ``a/b/<partition>``."""
        parts = list(self.asset_path)
        if self.partition_key is not None:
            parts.append(self.partition_key)
        return "/".join(parts)

    def file_name(self, extension: str) -> str:
        """Relative file or object name with ``extension`` (``json``, ``parquet``, ``kuzu``)."""
        return f"{self.relpath}.{extension}"

    @property
    def table_name(self) -> str:
        """SQL identifier for the asset's table (all partitions share it)."""
        return "__".join(
            _NON_IDENTIFIER.sub("_", part).strip("_") or "_" for part in self.asset_path
        ).lower()

    def describe(self) -> str:
        """``asset a/b`` or ``asset a/b partition 'c1'`` for messages."""
        if self.partition_key is None:
            return f"asset {self.asset_name}"
        return f"asset {self.asset_name} partition {self.partition_key!r}"


def storage_location(
    asset_path: Sequence[str], partition_key: str | None = None
) -> StorageLocation:
    """Build the :class:`StorageLocation` of an asset (partition), validating the partition key.

    Raises ``ConfigError`` for a key that is empty, ``.``/``..`` or holds a slash, backslash
    or control character, since it would not be a single safe path segment.
    """
    if not asset_path:
        raise ConfigError("an IO manager needs an asset key; got an empty key path")
    if partition_key is not None:
        key = str(partition_key)
        if not key or key in (".", "..") or _FORBIDDEN_IN_KEY.search(key):
            raise ConfigError(
                f"partition key {key!r} of asset {'/'.join(asset_path)} cannot be stored: "
                "it must be a non-empty single path segment without '/', '\\' or control characters"
            )
        partition_key = key
    return StorageLocation(tuple(str(p) for p in asset_path), partition_key)
