"""Shared partition handling for the value IO managers (filesystem, S3, DuckDB, SQL, memory).

Subclasses only say how to store and load *one* value at one :class:`StorageLocation`; this
base decides which locations a Dagster output or input covers:

- an unpartitioned asset has one location; a partitioned asset one per partition key;
- an output that spans several partitions (a single-run backfill) must be a ``dict``
  partition key → value (``None`` values store nothing);
- ``None`` as a whole output stores nothing (assets that write elsewhere and return nothing);
- an input over several upstream partitions (or any partitioned upstream read by an
  unpartitioned asset) loads as a ``dict`` partition key → value; set the input metadata
  ``allow_missing_partitions=True`` to skip partitions that were never stored.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import polars as pl
from dagster import ConfigurableIOManager, InputContext, OutputContext

from ..errors import ConfigError
from ._naming import StorageLocation, storage_location

# Metadata key an input can set to tolerate upstream partitions that were never stored.
ALLOW_MISSING_PARTITIONS = "allow_missing_partitions"


class StoredValueMissing(ConfigError, FileNotFoundError):
    """Nothing is stored for the asset (partition) an input asks for."""


def check_value(location: StorageLocation, obj: object) -> None:
    """Refuse values the value IO managers cannot store (only dicts and polars frames)."""
    if not isinstance(obj, (dict, pl.DataFrame)):
        raise TypeError(
            f"{location.describe()}: IO managers store dict (as JSON) or polars.DataFrame (as a "
            f"table) values, got {type(obj).__name__}; return one of those or None"
        )


def _asset_path(context: OutputContext | InputContext) -> tuple[str, ...]:
    if context.has_asset_key:
        return tuple(context.asset_key.path)
    # Plain op outputs (no asset key) still get a stable, readable location.
    return tuple(context.get_identifier())


def output_locations(context: OutputContext, obj: Any) -> list[tuple[StorageLocation, Any]]:
    """Pair each location an output covers with the value to store there (``None`` = skip)."""
    path = _asset_path(context)
    if not (context.has_asset_key and context.has_asset_partitions):
        return [(storage_location(path), obj)]
    keys = list(context.asset_partition_keys)
    if len(keys) == 1:
        return [(storage_location(path, keys[0]), obj)]
    if obj is None:
        return []
    if not isinstance(obj, Mapping) or set(obj) != set(keys):
        got = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise TypeError(
            f"asset {'/'.join(path)} ran for {len(keys)} partitions at once, so it must return a dict "
            f"partition key -> value with exactly those keys; expected {sorted(keys)}, got {got}"
        )
    return [(storage_location(path, key), obj[key]) for key in keys]


def _input_metadata(context: InputContext) -> Mapping[str, Any]:
    metadata = getattr(context, "definition_metadata", None)
    if metadata is None:
        metadata = getattr(context, "metadata", None)
    return metadata or {}


class PartitionAwareIOManager(ConfigurableIOManager, abc.ABC):
    """Base class: dispatch outputs and inputs over partitions; subclasses store one value."""

    @abc.abstractmethod
    def _store(
        self, context: OutputContext, location: StorageLocation, obj: dict | pl.DataFrame
    ) -> dict[str, Any]:
        """Store one value; return cheap Dagster metadata (path/uri/table, row count)."""

    @abc.abstractmethod
    def _load(self, context: InputContext, location: StorageLocation) -> Any:
        """Load one value; raise :class:`StoredValueMissing` when nothing is stored there."""

    def _check(self, location: StorageLocation, obj: object) -> None:
        """Refuse a value this manager cannot store (default: dicts and polars frames only)."""
        check_value(location, obj)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return  # the asset wrote elsewhere (or nothing): there is nothing to store
        pairs = [(loc, value) for loc, value in output_locations(context, obj) if value is not None]
        for location, value in pairs:
            self._check(location, value)
        metadata: dict[str, Any] = {}
        for location, value in pairs:
            metadata = self._store(context, location, value)
        if len(pairs) == 1:
            context.add_output_metadata(metadata)
        elif pairs:
            context.add_output_metadata({"partitions_stored": len(pairs)})

    def load_input(self, context: InputContext) -> Any:
        path = _asset_path(context)
        if not (context.has_asset_key and context.has_asset_partitions):
            return self._load(context, storage_location(path))
        keys = list(context.asset_partition_keys)
        if len(keys) == 1 and context.has_partition_key:
            return self._load(context, storage_location(path, keys[0]))
        allow_missing = bool(_input_metadata(context).get(ALLOW_MISSING_PARTITIONS, False))
        values: dict[str, Any] = {}
        for key in keys:
            try:
                values[key] = self._load(context, storage_location(path, key))
            except StoredValueMissing:
                if not allow_missing:
                    raise
        return values
