"""Graph IO manager on Kuzu (embedded graph database, Cypher queries).

Each asset (partition) gets its own database file, ``<db_path>/<asset>.kuzu`` or
``<db_path>/<asset>/<partition>.kuzu`` (naming in ``_naming``): a cohort's lineage graph is
then one file a person opens with ``kuzu.Database(path)``. A write builds the whole database
in a temporary file beside the target and renames it over the old one, so readers never see
half a graph.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import polars as pl
from dagster import InputContext, MetadataValue, OutputContext
from pydantic import Field

from ..errors import ConfigError
from ._base import PartitionAwareIOManager, StoredValueMissing
from ._naming import StorageLocation
from .graph import FROM_COLUMN, ID_COLUMN, TO_COLUMN, EdgeSet, GraphData

# polars dtype → (Kuzu column type, polars dtype the column is cast to before COPY).
_SIMPLE_TYPES: dict[Any, tuple[str, Any]] = {
    pl.String: ("STRING", pl.String),
    pl.Boolean: ("BOOLEAN", pl.Boolean),
    pl.Float32: ("DOUBLE", pl.Float64),
    pl.Float64: ("DOUBLE", pl.Float64),
    pl.Date: ("DATE", pl.Date),
    pl.Null: ("STRING", pl.String),
}


def _kuzu_type(dtype: pl.DataType, where: str) -> tuple[str, Any]:
    if dtype.is_integer():
        return "INT64", pl.Int64
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP", pl.Datetime("us")
    for simple, mapping in _SIMPLE_TYPES.items():
        if dtype == simple:
            return mapping
    raise ConfigError(
        f"{where}: column type {dtype} cannot be stored in the graph; use strings, numbers, booleans or dates"
    )


def _columns_ddl(frame: pl.DataFrame, columns: list[str], where: str) -> tuple[str, pl.DataFrame]:
    """Kuzu column definitions for ``columns`` and the frame cast to match them."""
    parts = []
    casts = []
    for column in columns:
        kuzu_type, cast = _kuzu_type(frame.schema[column], f"{where} column {column!r}")
        parts.append(f"`{column}` {kuzu_type}")
        casts.append(pl.col(column).cast(cast))
    return ", ".join(parts), frame.with_columns(casts) if casts else frame


class KuzuDBIOManager(PartitionAwareIOManager):
    """Store :class:`GraphData` values as Kuzu databases under the directory ``db_path``.

    Node tables get ``id`` as primary key; relationship sets of one label become one Kuzu
    relationship table (with several FROM/TO pairs when needed). Loading returns the
    ``GraphData`` back (nodes ordered by ``id``, edges by ``from``, ``to``).
    """

    db_path: str = Field(
        description="Directory holding one Kuzu database file per asset (partition)."
    )

    def path_for(self, location: StorageLocation) -> Path:
        """The Kuzu database file of ``location``."""
        return Path(self.db_path) / location.file_name("kuzu")

    def _check(self, location: StorageLocation, obj: object) -> None:
        if not isinstance(obj, GraphData):
            raise TypeError(
                f"{location.describe()}: the graph IO manager stores GraphData values "
                f"(daydreaming_dagster.io_managers.GraphData), got {type(obj).__name__}"
            )
        obj.validate()

    def _store(
        self, context: OutputContext, location: StorageLocation, obj: GraphData
    ) -> dict[str, Any]:
        import kuzu

        target = self.path_for(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            database = kuzu.Database(str(tmp))
            connection = kuzu.Connection(database)
            try:
                with tempfile.TemporaryDirectory(prefix="daydream-kuzu-") as staging:
                    _write_graph(connection, obj, Path(staging))
            finally:
                connection.close()
                database.close()
            os.replace(tmp, target)
        finally:
            for leftover in tmp.parent.glob(f"{tmp.name}*"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        return {
            "path": MetadataValue.path(str(target.resolve())),
            "node_count": obj.node_count,
            "edge_count": obj.edge_count,
            "node_labels": ", ".join(obj.nodes),
            "edge_labels": ", ".join(obj.edge_labels()),
        }

    def _load(self, context: InputContext, location: StorageLocation) -> GraphData:
        path = self.path_for(location)
        if not path.is_file():
            raise StoredValueMissing(
                f"nothing stored for {location.describe()}: expected graph database {path}"
            )
        return read_graph(path)


def _write_graph(connection: Any, graph: GraphData, staging: Path) -> None:
    for label, frame in graph.nodes.items():
        columns = [ID_COLUMN] + [c for c in frame.columns if c != ID_COLUMN]
        ddl, cast = _columns_ddl(frame.select(columns), columns, f"node table {label!r}")
        connection.execute(f"CREATE NODE TABLE `{label}`({ddl}, PRIMARY KEY(`{ID_COLUMN}`))")
        if cast.height:
            _copy_frame(connection, f"`{label}`", cast, staging)
    for rel_label, group in graph.edge_labels().items():
        first = group[0]
        ddl, _ = _columns_ddl(first.frame, first.property_columns, f"relationship {rel_label!r}")
        pairs = ", ".join(f"FROM `{e.from_label}` TO `{e.to_label}`" for e in group)
        connection.execute(f"CREATE REL TABLE `{rel_label}`({pairs}{', ' + ddl if ddl else ''})")
        for edge in group:
            _copy_edges(connection, graph, edge, staging, multiple=len(group) > 1)


def _copy_edges(connection: Any, graph: GraphData, edge: EdgeSet, staging: Path, *, multiple: bool) -> None:
    if not edge.frame.height:
        return
    columns = [FROM_COLUMN, TO_COLUMN, *edge.property_columns]
    frame = edge.frame.select(columns)
    # Endpoint ids must have the node tables' id type (Kuzu matches them by primary key).
    frame = frame.with_columns(
        pl.col(FROM_COLUMN).cast(graph.nodes[edge.from_label].schema[ID_COLUMN]),
        pl.col(TO_COLUMN).cast(graph.nodes[edge.to_label].schema[ID_COLUMN]),
    )
    _, frame = _columns_ddl(frame, columns, f"relationship {edge.label!r}")
    options = f" (from='{edge.from_label}', to='{edge.to_label}')" if multiple else ""
    _copy_frame(connection, f"`{edge.label}`", frame, staging, options)


def _copy_frame(connection: Any, table: str, frame: pl.DataFrame, staging: Path, options: str = "") -> None:
    """``COPY table FROM`` a Parquet file of ``frame``.

    Kuzu can also copy from a data frame passed as a query parameter, but its binding then
    imports pandas (about half a second, once per process) even for a polars frame; a Parquet
    file keeps the column types and costs milliseconds.
    """
    path = staging / f"{uuid.uuid4().hex}.parquet"
    frame.write_parquet(path)
    quoted = str(path).replace("\\", "\\\\").replace("'", "\\'")
    connection.execute(f"COPY {table} FROM '{quoted}'{options}")
    path.unlink()


def read_graph(path: str | os.PathLike[str]) -> GraphData:
    """Read a graph database written by :class:`KuzuDBIOManager` back into ``GraphData``."""
    import kuzu

    database = kuzu.Database(str(path), read_only=True)
    connection = kuzu.Connection(database)
    try:
        tables = connection.execute("CALL show_tables() RETURN name, type").get_as_pl()
        nodes: dict[str, pl.DataFrame] = {}
        edges: list[EdgeSet] = []
        for name in tables.filter(pl.col("type") == "NODE")["name"].to_list():
            props = _properties(connection, name)
            select = ", ".join(f"n.`{p}` AS `{p}`" for p in props)
            nodes[name] = connection.execute(
                f"MATCH (n:`{name}`) RETURN {select} ORDER BY `{ID_COLUMN}`"
            ).get_as_pl()
        for name in tables.filter(pl.col("type") == "REL")["name"].to_list():
            props = [p for p in _properties(connection, name)]
            pairs = connection.execute(f"CALL show_connection('{name}') RETURN *").get_as_pl()
            for source, destination in pairs.select(pairs.columns[0], pairs.columns[1]).iter_rows():
                extra = "".join(f", r.`{p}` AS `{p}`" for p in props)
                frame = connection.execute(
                    f"MATCH (a:`{source}`)-[r:`{name}`]->(b:`{destination}`) "
                    f"RETURN a.`{ID_COLUMN}` AS `{FROM_COLUMN}`, b.`{ID_COLUMN}` AS `{TO_COLUMN}`{extra} "
                    f"ORDER BY `{FROM_COLUMN}`, `{TO_COLUMN}`"
                ).get_as_pl()
                edges.append(EdgeSet(name, source, destination, frame))
        return GraphData(nodes=nodes, edges=tuple(edges))
    finally:
        connection.close()
        database.close()


def _properties(connection: Any, table: str) -> list[str]:
    info = connection.execute(f"CALL table_info('{table}') RETURN *").get_as_pl()
    return info["name"].to_list()
