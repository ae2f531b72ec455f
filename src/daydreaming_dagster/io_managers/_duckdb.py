"""DuckDB IO manager: polars frames as real DuckDB tables, dicts as JSON in a catalog table
(layout in ``_tables``)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import polars as pl
from dagster import InputContext, OutputContext
from pydantic import Field

from ..errors import ConfigError
from . import _tables
from ._base import PartitionAwareIOManager, StoredValueMissing
from ._naming import PARTITION_COLUMN, StorageLocation

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# DuckDB allows one writing process per file; other steps wait briefly instead of failing.
_LOCK_RETRIES = 20
_LOCK_WAIT_SECONDS = 0.25


def quote_identifier(name: str, what: str) -> str:
    """Double-quote a schema or table name after checking it is a plain identifier."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(
            f"{what} {name!r} must be a plain identifier (letters, digits, underscore)"
        )
    return f'"{name}"'


class DuckDBIOManager(PartitionAwareIOManager):
    """Store values in the DuckDB file ``db_path`` under ``schema`` (default ``main``).

    A frame becomes table ``<schema>.<asset_table>`` (partitions share it, keyed by a
    ``partition_key`` column); a dict becomes a JSON row of ``<schema>.dagster_io_catalog``.
    Query the results with any DuckDB client, e.g. ``duckdb data/results.duckdb``.
    """

    db_path: str = Field(description="Path of the DuckDB database file (created on demand).")
    schema_: str = Field(default="main", alias="schema", description="Schema holding the tables.")

    def _connect(self) -> Any:
        import duckdb

        path = Path(self.db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(_LOCK_RETRIES):
            try:
                return duckdb.connect(str(path))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or attempt == _LOCK_RETRIES - 1:
                    raise ConfigError(f"cannot open DuckDB database {path}: {exc}") from None
                time.sleep(_LOCK_WAIT_SECONDS)
        raise AssertionError("unreachable")

    @property
    def _schema(self) -> str:
        return quote_identifier(self.schema_, "DuckDB schema")

    def qualified_table(self, location: StorageLocation) -> str:
        """``"schema"."table"`` for ``location``'s frame table."""
        return f"{self._schema}.{quote_identifier(location.table_name, 'table name')}"

    def _prepare(self, con: Any) -> None:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {self._schema}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self._schema}.{_tables.CATALOG_TABLE} ("
            "asset_key VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
            "value VARCHAR, table_name VARCHAR, row_count BIGINT, updated_at TIMESTAMP NOT NULL, "
            "PRIMARY KEY (asset_key, partition_key))"
        )

    def _record(
        self,
        con: Any,
        location: StorageLocation,
        kind: str,
        value: str | None,
        table: str | None,
        rows: int | None,
    ) -> None:
        con.execute(
            f"INSERT OR REPLACE INTO {self._schema}.{_tables.CATALOG_TABLE} "
            "VALUES (?, ?, ?, ?, ?, ?, now())",
            [location.asset_name, _tables.catalog_partition(location), kind, value, table, rows],
        )

    def _table_exists(self, con: Any, table_name: str) -> bool:
        # fetchall, not fetchone: DuckDB refuses new statements while a result is unfinished.
        rows = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [self.schema_, table_name],
        ).fetchall()
        return bool(rows and rows[0][0])

    def _store(
        self, context: OutputContext, location: StorageLocation, obj: dict | pl.DataFrame
    ) -> dict[str, Any]:
        con = self._connect()
        try:
            con.execute("BEGIN TRANSACTION")
            self._prepare(con)
            if isinstance(obj, dict):
                self._record(con, location, _tables.KIND_JSON, _tables.dump_dict(obj), None, None)
                metadata: dict[str, Any] = {
                    "db_path": self.db_path,
                    "table": f"{self.schema_}.{_tables.CATALOG_TABLE}",
                }
            else:
                self._write_frame(con, location, obj)
                self._record(
                    con, location, _tables.KIND_TABLE, None, location.table_name, obj.height
                )
                metadata = {
                    "db_path": self.db_path,
                    "table": f"{self.schema_}.{location.table_name}",
                    "row_count": obj.height,
                }
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return metadata

    def _write_frame(self, con: Any, location: StorageLocation, frame: pl.DataFrame) -> None:
        table = self.qualified_table(location)
        stored = _tables.frame_for_table(location, frame)
        con.register("_daydream_frame", stored)
        try:
            if location.partition_key is None or not self._table_exists(con, location.table_name):
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _daydream_frame")
                return
            existing = con.sql(f"SELECT * FROM {table} LIMIT 0").pl()
            if dict(existing.schema) == dict(stored.schema):
                con.execute(
                    f"DELETE FROM {table} WHERE {PARTITION_COLUMN} = ?", [location.partition_key]
                )
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _daydream_frame")
                return
            # The partition's columns changed: rebuild the table with every partition aligned.
            everything = con.sql(f"SELECT * FROM {table}").pl()
            if PARTITION_COLUMN not in everything.columns:
                merged = stored
            else:
                merged = _tables.merge_partition(everything, stored, location.partition_key)
            con.register("_daydream_merged", merged)
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _daydream_merged")
            con.unregister("_daydream_merged")
        finally:
            con.unregister("_daydream_frame")

    def _load(self, context: InputContext, location: StorageLocation) -> Any:
        missing = StoredValueMissing(
            f"nothing stored for {location.describe()} in DuckDB {self.db_path} (schema {self.schema_}); "
            "materialise that asset first"
        )
        if not Path(self.db_path).exists():
            raise missing
        con = self._connect()
        try:
            if not self._table_exists(con, _tables.CATALOG_TABLE):
                raise missing
            rows = con.execute(
                f"SELECT kind, value FROM {self._schema}.{_tables.CATALOG_TABLE} WHERE asset_key = ? AND partition_key = ?",
                [location.asset_name, _tables.catalog_partition(location)],
            ).fetchall()
            if not rows:
                raise missing
            kind, value = rows[0]
            if kind == _tables.KIND_JSON:
                return _tables.load_dict(value, f"{location.describe()} in {self.db_path}")
            query = f"SELECT * FROM {self.qualified_table(location)}"
            params: list[Any] = []
            if location.partition_key is not None:
                query += f" WHERE {PARTITION_COLUMN} = ?"
                params.append(location.partition_key)
            frame = con.sql(query, params=params or None).pl()
            return _tables.frame_from_table(frame)
        finally:
            con.close()
