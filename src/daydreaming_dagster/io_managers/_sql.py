"""SQL IO manager (PostgreSQL or SQLite) on SQLAlchemy 2 and polars' own database I/O:
polars frames as real tables, dicts as JSON in a catalog table (layout in ``_tables``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import polars as pl
from dagster import InputContext, OutputContext
from pydantic import Field

from ..errors import ConfigError
from . import _tables
from ._base import PartitionAwareIOManager, StoredValueMissing
from ._duckdb import quote_identifier
from ._naming import PARTITION_COLUMN, StorageLocation

DbType = Literal["postgresql", "sqlite"]


class SQLIOManager(PartitionAwareIOManager):
    """Store values in PostgreSQL (``db_type="postgresql"``, via psycopg 3) or SQLite.

    PostgreSQL: ``host``, ``port``, ``db_name``, ``username``, ``password`` (use ``EnvVar``)
    and ``schema`` (default ``public``, created if missing). SQLite: ``db_name`` is the file
    path (``.db`` is appended when it has no suffix) and ``schema`` is ignored.

    A frame becomes table ``<schema>.<asset_table>`` (partitions share it, keyed by a
    ``partition_key`` column, replaced per partition in one transaction); a dict becomes a
    JSON row of ``<schema>.dagster_io_catalog``. Connection failures raise ``ConfigError``
    naming host, port, database and user, never the password. SQLite returns booleans as
    integers and dates as text (its storage has no such types); PostgreSQL keeps them.
    """

    db_type: DbType = Field(default="postgresql", description="postgresql or sqlite.")
    host: str | None = Field(default="localhost", description="PostgreSQL host.")
    port: int = Field(default=5432, description="PostgreSQL port.")
    db_name: str = Field(description="PostgreSQL database name, or the SQLite file path.")
    username: str | None = Field(default=None, description="PostgreSQL user (use EnvVar).")
    password: str | None = Field(default=None, description="PostgreSQL password (use EnvVar).")
    schema_: str | None = Field(
        default=None, alias="schema", description="Schema (PostgreSQL only)."
    )

    # -- connection -------------------------------------------------------------------------
    @property
    def _is_sqlite(self) -> bool:
        return self.db_type == "sqlite"

    @property
    def sqlite_path(self) -> Path:
        path = Path(self.db_name)
        return path if path.suffix else path.with_suffix(".db")

    def describe_target(self) -> str:
        """Where the data goes, for messages and metadata (no password)."""
        if self._is_sqlite:
            return f"SQLite database {self.sqlite_path}"
        return f"PostgreSQL at {self.host}:{self.port} database {self.db_name!r} as user {self.username!r}"

    def engine(self) -> Any:
        """A SQLAlchemy engine (no pooling: every step opens and closes its own connection)."""
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        if self._is_sqlite:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            return sa.create_engine(f"sqlite:///{self.sqlite_path}", poolclass=NullPool)
        if self.db_type != "postgresql":
            raise ConfigError(
                f"SQLIOManager db_type must be 'postgresql' or 'sqlite', got {self.db_type!r}"
            )
        url = sa.URL.create(
            "postgresql+psycopg",
            username=self.username,
            password=self.password,
            host=self.host,
            port=self.port,
            database=self.db_name,
        )
        return sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})

    def _connect(self, engine: Any) -> Any:
        """Open a connection now, so an unreachable server or a bad password fails here with a
        ``ConfigError`` instead of deep inside a query."""
        import sqlalchemy as sa

        try:
            return engine.connect()
        except sa.exc.OperationalError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: Exception) -> ConfigError:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()
        reason = " ".join(line.strip() for line in detail[:2]) or type(exc).__name__
        if self.password:
            reason = reason.replace(self.password, "***")
        hint = "check the DAYDREAMING_PG_* settings and that the server is running"
        return ConfigError(f"cannot connect to {self.describe_target()}: {reason}; {hint}")

    @property
    def schema_name(self) -> str | None:
        """The schema tables live in (``None`` for SQLite)."""
        if self._is_sqlite:
            return None
        return self.schema_ or "public"

    def _qualified(self, table: str) -> str:
        quoted = quote_identifier(table, "table name")
        if self.schema_name is None:
            return quoted
        return f"{quote_identifier(self.schema_name, 'PostgreSQL schema')}.{quoted}"

    def _display(self, table: str) -> str:
        return table if self.schema_name is None else f"{self.schema_name}.{table}"

    def _prepare(self, conn: Any) -> None:
        import sqlalchemy as sa

        if self.schema_name is not None:
            conn.execute(
                sa.text(
                    f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(self.schema_name, 'PostgreSQL schema')}"
                )
            )
        conn.execute(
            sa.text(
                f"CREATE TABLE IF NOT EXISTS {self._qualified(_tables.CATALOG_TABLE)} ("
                "asset_key TEXT NOT NULL, partition_key TEXT NOT NULL, kind TEXT NOT NULL, value TEXT, "
                "table_name TEXT, row_count BIGINT, updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
                "PRIMARY KEY (asset_key, partition_key))"
            )
        )

    def _record(
        self,
        conn: Any,
        location: StorageLocation,
        kind: str,
        value: str | None,
        table: str | None,
        rows: int | None,
    ) -> None:
        import sqlalchemy as sa

        conn.execute(
            sa.text(
                f"INSERT INTO {self._qualified(_tables.CATALOG_TABLE)} "
                "(asset_key, partition_key, kind, value, table_name, row_count, updated_at) "
                "VALUES (:asset, :partition, :kind, :value, :table, :rows, CURRENT_TIMESTAMP) "
                "ON CONFLICT (asset_key, partition_key) DO UPDATE SET kind = excluded.kind, "
                "value = excluded.value, table_name = excluded.table_name, row_count = excluded.row_count, "
                "updated_at = excluded.updated_at"
            ),
            {
                "asset": location.asset_name,
                "partition": _tables.catalog_partition(location),
                "kind": kind,
                "value": value,
                "table": table,
                "rows": rows,
            },
        )

    # -- store / load -----------------------------------------------------------------------
    def _store(
        self, context: OutputContext, location: StorageLocation, obj: dict | pl.DataFrame
    ) -> dict[str, Any]:
        engine = self.engine()
        try:
            with self._connect(engine) as conn, conn.begin():
                self._prepare(conn)
                if isinstance(obj, dict):
                    self._record(
                        conn, location, _tables.KIND_JSON, _tables.dump_dict(obj), None, None
                    )
                    return {
                        "database": self.describe_target(),
                        "table": self._display(_tables.CATALOG_TABLE),
                    }
                self._write_frame(conn, location, obj)
                self._record(
                    conn, location, _tables.KIND_TABLE, None, location.table_name, obj.height
                )
                return {
                    "database": self.describe_target(),
                    "table": self._display(location.table_name),
                    "row_count": obj.height,
                }
        finally:
            engine.dispose()

    def _write_frame(self, conn: Any, location: StorageLocation, frame: pl.DataFrame) -> None:
        import sqlalchemy as sa

        stored = _tables.frame_for_table(location, frame)
        target = self._display(location.table_name)
        exists = sa.inspect(conn).has_table(location.table_name, schema=self.schema_name)
        if location.partition_key is None or not exists:
            stored.write_database(target, connection=conn, if_table_exists="replace")
            return
        table = self._qualified(location.table_name)
        existing_columns = set(
            pl.read_database(f"SELECT * FROM {table} WHERE 1 = 0", connection=conn).columns
        )
        if existing_columns == set(stored.columns):
            conn.execute(
                sa.text(f"DELETE FROM {table} WHERE {PARTITION_COLUMN} = :pk"),
                {"pk": location.partition_key},
            )
            stored.write_database(target, connection=conn, if_table_exists="append")
            return
        # The partition's columns changed: rebuild the table with every partition aligned.
        everything = pl.read_database(f"SELECT * FROM {table}", connection=conn)
        if PARTITION_COLUMN in everything.columns:
            stored = _tables.merge_partition(everything, stored, location.partition_key)
        stored.write_database(target, connection=conn, if_table_exists="replace")

    def _load(self, context: InputContext, location: StorageLocation) -> Any:
        import sqlalchemy as sa

        missing = StoredValueMissing(
            f"nothing stored for {location.describe()} in {self.describe_target()}; materialise that asset first"
        )
        if self._is_sqlite and not self.sqlite_path.exists():
            raise missing
        engine = self.engine()
        try:
            with self._connect(engine) as conn:
                if not sa.inspect(conn).has_table(_tables.CATALOG_TABLE, schema=self.schema_name):
                    raise missing
                row = conn.execute(
                    sa.text(
                        f"SELECT kind, value FROM {self._qualified(_tables.CATALOG_TABLE)} "
                        "WHERE asset_key = :asset AND partition_key = :partition"
                    ),
                    {
                        "asset": location.asset_name,
                        "partition": _tables.catalog_partition(location),
                    },
                ).fetchone()
                if row is None:
                    raise missing
                kind, value = row
                if kind == _tables.KIND_JSON:
                    return _tables.load_dict(
                        value, f"{location.describe()} in {self.describe_target()}"
                    )
                query = f"SELECT * FROM {self._qualified(location.table_name)}"
                options: dict[str, Any] = {}
                if location.partition_key is not None:
                    query += f" WHERE {PARTITION_COLUMN} = :pk"
                    options = {"parameters": {"pk": location.partition_key}}
                frame = pl.read_database(
                    sa.text(query), connection=conn, execute_options=options or None
                )
                return _tables.frame_from_table(frame)
        finally:
            engine.dispose()
