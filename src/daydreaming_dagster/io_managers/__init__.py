"""Swappable IO managers for the results layer (seed 004).

Every manager stores ``dict`` values as JSON and ``polars.DataFrame`` values as tables
(Parquet files/objects, or real tables in DuckDB/SQL), one file/object/row set per partition;
``None`` outputs store nothing; an input over several partitions loads as a dict partition →
value. The graph manager stores :class:`GraphData`. Storage names come from one function,
``storage_location``. Which set a deployment uses is chosen in
``daydreaming_dagster.environments``.
"""

from ._base import ALLOW_MISSING_PARTITIONS, PartitionAwareIOManager, StoredValueMissing
from ._duckdb import DuckDBIOManager
from ._filesystem import FilesystemIOManager
from ._kuzu import KuzuDBIOManager, read_graph
from ._memory import InMemoryIOManager
from ._naming import PARTITION_COLUMN, ROW_COLUMN, StorageLocation, storage_location
from ._s3 import S3IOManager
from ._sql import SQLIOManager
from ._tables import CATALOG_TABLE
from .graph import EdgeSet, GraphData

__all__ = [
    "ALLOW_MISSING_PARTITIONS",
    "CATALOG_TABLE",
    "PARTITION_COLUMN",
    "ROW_COLUMN",
    "DuckDBIOManager",
    "EdgeSet",
    "FilesystemIOManager",
    "GraphData",
    "InMemoryIOManager",
    "KuzuDBIOManager",
    "PartitionAwareIOManager",
    "S3IOManager",
    "SQLIOManager",
    "StorageLocation",
    "StoredValueMissing",
    "read_graph",
    "storage_location",
]
