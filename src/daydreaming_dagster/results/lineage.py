"""The lineage graph of a cohort: Draft → Essay → Evaluation (``PARENT_OF``) and Draft → Concept
(``USES``), with templates, models, statuses and scores as properties.

The value is a pure :class:`LineageGraph` (node frames by label, edge frames), the same shape as
the graph IO manager's ``GraphData``; the Dagster asset converts it (this module must not import
the IO managers, which import Dagster). Stored by the Kuzu IO manager it answers, e.g.::

    MATCH (d:Draft)-[:PARENT_OF]->(e:Essay)-[:PARENT_OF]->(v:Evaluation)
    RETURN d.template, e.id, avg(v.score)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .cohort import CohortRecords, generations_table, load_cohort_records
from .scores import concepts_by_combo

__all__ = ["LineageEdges", "LineageGraph", "build_lineage_graph", "lineage_graph"]

_LABELS = {"draft": "Draft", "essay": "Essay", "evaluation": "Evaluation"}


@dataclass(frozen=True)
class LineageEdges:
    """Relationships of one label from one node label to another."""

    label: str
    """``PARENT_OF`` or ``USES``."""
    from_label: str
    to_label: str
    frame: pl.DataFrame
    """Columns ``from`` and ``to`` (node ids)."""


@dataclass(frozen=True)
class LineageGraph:
    """Node frames by label (each with a unique ``id`` column) and edge sets."""

    nodes: dict[str, pl.DataFrame]
    edges: tuple[LineageEdges, ...] = field(default=())

    @property
    def node_count(self) -> int:
        return sum(frame.height for frame in self.nodes.values())

    @property
    def edge_count(self) -> int:
        return sum(edges.frame.height for edges in self.edges)


_NODE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "member": pl.Boolean(),
    "template": pl.String(),
    "mode": pl.String(),
    "llm": pl.String(),
    "combo_id": pl.String(),
    "replicate": pl.Int64(),
    "status": pl.String(),
    "score": pl.Float64(),
    "scale": pl.String(),
    "cost_usd": pl.Float64(),
    "total_tokens": pl.Int64(),
}
_EDGE_SCHEMA: dict[str, pl.DataType] = {"from": pl.String(), "to": pl.String()}


def _nodes(generations: pl.DataFrame, stage: str) -> pl.DataFrame:
    frame = generations.filter(pl.col("stage") == stage).rename(
        {"gen_id": "id", "template_id": "template", "llm_model_id": "llm"}
    )
    frame = frame.select([pl.col(c).cast(t) for c, t in _NODE_SCHEMA.items()])
    if stage == "essay":  # an essay's own score is the mean of its evaluations' scores
        means = (
            generations.filter((pl.col("stage") == "evaluation") & pl.col("score").is_not_null())
            .group_by("parent_gen_id")
            .agg(pl.col("score").mean().alias("mean_score"), pl.len().cast(pl.Int64).alias("n_scores"))
        )
        frame = frame.drop("score", "scale").join(means, left_on="id", right_on="parent_gen_id", how="left", maintain_order="left")
        frame = frame.with_columns(pl.col("n_scores").fill_null(0))
    elif stage == "draft":
        frame = frame.drop("score", "scale")
    return frame


def _parent_edges(generations: pl.DataFrame, child_stage: str, parent_ids: pl.Series) -> pl.DataFrame:
    return (
        generations.filter((pl.col("stage") == child_stage) & pl.col("parent_gen_id").is_in(parent_ids.implode()))
        .select(pl.col("parent_gen_id").alias("from"), pl.col("gen_id").alias("to"))
        .cast(_EDGE_SCHEMA)  # type: ignore[arg-type]
    )


def lineage_graph(cohort: CohortRecords, concepts: dict[str, tuple[str, ...]] | None = None) -> LineageGraph:
    """Build the graph from loaded records: one node per generation read (members and their
    out-of-cohort parents) with ``member``, template, mode, llm, combo, replicate, status,
    cost and tokens; evaluations carry ``score``/``scale``, essays ``mean_score``/``n_scores``.
    With ``concepts`` (combo → concept ids) drafts get ``USES`` edges to ``Concept`` nodes."""
    generations = generations_table(cohort)
    nodes = {label: _nodes(generations, stage) for stage, label in _LABELS.items()}
    edges = [
        LineageEdges("PARENT_OF", "Draft", "Essay", _parent_edges(generations, "essay", nodes["Draft"]["id"])),
        LineageEdges("PARENT_OF", "Essay", "Evaluation", _parent_edges(generations, "evaluation", nodes["Essay"]["id"])),
    ]
    if concepts:
        pairs = [
            (draft_id, concept_id)
            for draft_id, combo_id in nodes["Draft"].select("id", "combo_id").iter_rows()
            for concept_id in concepts.get(combo_id or "", ())
        ]
        uses = pl.DataFrame(pairs, schema=_EDGE_SCHEMA, orient="row").unique(maintain_order=True)
        nodes["Concept"] = pl.DataFrame({"id": sorted(set(uses["to"].to_list()))}, schema={"id": pl.String()})
        edges.append(LineageEdges("USES", "Draft", "Concept", uses))
    return LineageGraph(nodes=nodes, edges=tuple(edges))


def build_lineage_graph(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> LineageGraph:
    """Read the cohort from the gens store and build its :class:`LineageGraph` (with concepts
    from ``combo_mappings.csv``). Raises ``CohortNotFoundError`` for an unknown cohort."""
    cohort = load_cohort_records(data_root, cohort_id)
    return lineage_graph(cohort, concepts_by_combo(data_root))
