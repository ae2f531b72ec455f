"""The graph value an asset returns to the graph IO manager (``KuzuDBIOManager``).

A graph is typed node tables and relationship sets, each a polars frame::

    GraphData(
        nodes={
            "Draft": pl.DataFrame({"id": ["d_1"], "template": ["links-v1"]}),
            "Essay": pl.DataFrame({"id": ["e_1"], "mean_score": [7.5]}),
        },
        edges=(
            EdgeSet("PARENT_OF", "Draft", "Essay", pl.DataFrame({"from": ["d_1"], "to": ["e_1"]})),
        ),
    )

stored, the graph answers Cypher such as ``MATCH (d:Draft)-[:PARENT_OF]->(e:Essay) RETURN
d.id, e.mean_score``. Several ``EdgeSet``s may share a label with different endpoint labels
(``PARENT_OF`` Draft→Essay and Essay→Evaluation); they then need the same property columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from ..errors import ConfigError

__all__ = ["EdgeSet", "GraphData", "ID_COLUMN", "FROM_COLUMN", "TO_COLUMN"]

ID_COLUMN = "id"
FROM_COLUMN = "from"
TO_COLUMN = "to"
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class EdgeSet:
    """Relationships of one label between one pair of node labels."""

    label: str
    """Relationship label, e.g. ``PARENT_OF``."""
    from_label: str
    """Node label of the ``from`` ids."""
    to_label: str
    """Node label of the ``to`` ids."""
    frame: pl.DataFrame
    """Columns ``from`` and ``to`` (node ids), then any property columns."""

    @property
    def property_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in (FROM_COLUMN, TO_COLUMN)]


@dataclass(frozen=True)
class GraphData:
    """A property graph: node frames by label and relationship sets."""

    nodes: Mapping[str, pl.DataFrame]
    """Node label → frame with a unique, non-null ``id`` column plus property columns."""
    edges: tuple[EdgeSet, ...] = field(default=())
    """Relationship sets (their endpoint ids must exist in the named node frames)."""

    @property
    def node_count(self) -> int:
        return sum(frame.height for frame in self.nodes.values())

    @property
    def edge_count(self) -> int:
        return sum(edge.frame.height for edge in self.edges)

    def edge_labels(self) -> dict[str, list[EdgeSet]]:
        """Edge sets grouped by relationship label (insertion order kept)."""
        grouped: dict[str, list[EdgeSet]] = {}
        for edge in self.edges:
            grouped.setdefault(edge.label, []).append(edge)
        return grouped

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the label/column at fault when the graph is malformed."""
        for label, frame in self.nodes.items():
            _check_label(label, "node")
            if not isinstance(frame, pl.DataFrame):
                raise ConfigError(
                    f"graph node table {label!r} must be a polars.DataFrame, got {type(frame).__name__}"
                )
            if ID_COLUMN not in frame.columns:
                raise ConfigError(
                    f"graph node table {label!r} needs an {ID_COLUMN!r} column; has {frame.columns}"
                )
            if frame[ID_COLUMN].null_count():
                raise ConfigError(f"graph node table {label!r} has null ids")
            if frame[ID_COLUMN].n_unique() != frame.height:
                dupes = (
                    frame.filter(pl.col(ID_COLUMN).is_duplicated())[ID_COLUMN]
                    .unique()
                    .sort()
                    .to_list()[:5]
                )
                raise ConfigError(f"graph node table {label!r} has duplicate ids: {dupes}")
            _check_properties(frame.columns, f"node table {label!r}")
        for rel_label, group in self.edge_labels().items():
            _check_label(rel_label, "relationship")
            if rel_label in self.nodes:
                raise ConfigError(
                    f"graph label {rel_label!r} is used for both nodes and relationships"
                )
            first = group[0]
            for edge in group:
                self._validate_edge(edge)
                if dict(edge.frame.drop(FROM_COLUMN, TO_COLUMN).schema) != dict(
                    first.frame.drop(FROM_COLUMN, TO_COLUMN).schema
                ):
                    raise ConfigError(
                        f"graph relationship {rel_label!r}: every edge set of one label needs the same property "
                        f"columns; {first.from_label}->{first.to_label} has {first.property_columns}, "
                        f"{edge.from_label}->{edge.to_label} has {edge.property_columns}"
                    )

    def _validate_edge(self, edge: EdgeSet) -> None:
        where = f"graph relationship {edge.label!r} ({edge.from_label}->{edge.to_label})"
        for column in (FROM_COLUMN, TO_COLUMN):
            if column not in edge.frame.columns:
                raise ConfigError(
                    f"{where} needs columns 'from' and 'to'; has {edge.frame.columns}"
                )
        _check_properties(edge.property_columns, where)
        for column, node_label in ((FROM_COLUMN, edge.from_label), (TO_COLUMN, edge.to_label)):
            if node_label not in self.nodes:
                raise ConfigError(
                    f"{where}: node label {node_label!r} is not among the nodes {sorted(self.nodes)}"
                )
            known = self.nodes[node_label][ID_COLUMN]
            unknown = (
                edge.frame.filter(~pl.col(column).is_in(known.implode()))[column]
                .unique()
                .sort()
                .to_list()
            )
            if unknown:
                raise ConfigError(
                    f"{where}: {column!r} ids not in node table {node_label!r}: {unknown[:5]}"
                )


def _check_label(label: str, kind: str) -> None:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ConfigError(
            f"graph {kind} label {label!r} must be an identifier (letters, digits, underscore)"
        )


def _check_properties(columns: list[str], where: str) -> None:
    for column in columns:
        if not _PROPERTY.match(column):
            raise ConfigError(
                f"{where}: property column {column!r} must be an identifier (letters, digits, underscore)"
            )
