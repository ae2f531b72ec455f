"""Filesystem IO manager: dicts as JSON files, polars frames as Parquet files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from dagster import InputContext, MetadataValue, OutputContext
from pydantic import Field

from ..data_layer import _storage
from . import _codec
from ._base import PartitionAwareIOManager, StoredValueMissing
from ._naming import StorageLocation


class FilesystemIOManager(PartitionAwareIOManager):
    """Store values under ``base_path``: ``<asset>.json`` / ``<asset>.parquet``, or
    ``<asset>/<partition>.json`` per partition (naming in ``_naming.storage_location``).

    Writes are atomic (temporary file + rename, via the data layer), and writing one format
    removes a stale file of the other format for the same location, so a load is never
    ambiguous.
    """

    base_path: str = Field(
        description="Directory that holds the stored values (created on demand)."
    )

    def path_for(self, location: StorageLocation, extension: str) -> Path:
        """The file holding ``location`` in ``extension`` format."""
        return Path(self.base_path) / location.file_name(extension)

    def _store(
        self, context: OutputContext, location: StorageLocation, obj: dict | pl.DataFrame
    ) -> dict[str, Any]:
        extension = _codec.extension_for(obj)
        path = self.path_for(location, extension)
        _storage.atomic_write_bytes(path, _codec.encode(obj))
        for other in _codec.EXTENSIONS:
            if other != extension:
                _storage.remove_file(self.path_for(location, other))
        metadata: dict[str, Any] = {"path": MetadataValue.path(str(path.resolve()))}
        rows = _codec.row_count(obj)
        if rows is not None:
            metadata["row_count"] = rows
        return metadata

    def _load(self, context: InputContext, location: StorageLocation) -> Any:
        for extension in _codec.EXTENSIONS:
            path = self.path_for(location, extension)
            if path.is_file():
                return _codec.decode(extension, path.read_bytes(), str(path))
        raise StoredValueMissing(
            f"nothing stored for {location.describe()}: expected "
            f"{self.path_for(location, 'parquet')} or {self.path_for(location, 'json')}; "
            "materialise that asset first"
        )
