"""KuzuDBIOManager: GraphData stored as one Kuzu database file per asset partition."""

from __future__ import annotations

from pathlib import Path

import kuzu
import polars as pl
import pytest
from dagster import DagsterInstance, StaticPartitionsDefinition, asset, materialize

from daydreaming_dagster.errors import ConfigError
from daydreaming_dagster.io_managers import EdgeSet, GraphData, KuzuDBIOManager, read_graph

PARTS = StaticPartitionsDefinition(["c1", "c2"])


def lineage(cohort: str) -> GraphData:
    """draft → essay → evaluation, with scores on evaluations and a property on one edge set."""
    drafts = pl.DataFrame(
        {"id": [f"d_{cohort}_1", f"d_{cohort}_2"], "template": ["links-v1", "links-v2"]}
    )
    essays = pl.DataFrame(
        {"id": [f"e_{cohort}_1", f"e_{cohort}_2", f"e_{cohort}_3"], "mean_score": [7.5, 4.0, None]}
    )
    evaluations = pl.DataFrame(
        {"id": [f"v_{cohort}_1", f"v_{cohort}_2"], "score": [8, 7], "model": ["m1", "m2"]}
    )
    return GraphData(
        nodes={"Draft": drafts, "Essay": essays, "Evaluation": evaluations},
        edges=(
            EdgeSet(
                "PARENT_OF",
                "Draft",
                "Essay",
                pl.DataFrame(
                    {
                        "from": [f"d_{cohort}_1", f"d_{cohort}_1", f"d_{cohort}_2"],
                        "to": [f"e_{cohort}_1", f"e_{cohort}_2", f"e_{cohort}_3"],
                    }
                ),
            ),
            EdgeSet(
                "PARENT_OF",
                "Essay",
                "Evaluation",
                pl.DataFrame(
                    {
                        "from": [f"e_{cohort}_1", f"e_{cohort}_1"],
                        "to": [f"v_{cohort}_1", f"v_{cohort}_2"],
                    }
                ),
            ),
        ),
    )


def _cypher(path: Path, query: str) -> list[tuple]:
    database = kuzu.Database(str(path), read_only=True)
    connection = kuzu.Connection(database)
    try:
        return [tuple(row) for row in connection.execute(query).get_as_pl().rows()]
    finally:
        connection.close()
        database.close()


def test_partitioned_graph_is_queryable_and_loads_back(tmp_path: Path) -> None:
    loaded: dict[str, GraphData] = {}

    @asset(partitions_def=PARTS, io_manager_key="graph_io_manager")
    def lineage_graph(context) -> GraphData:
        return lineage(context.partition_key)

    @asset(partitions_def=PARTS)
    def reader(context, lineage_graph: GraphData) -> None:
        loaded[context.partition_key] = lineage_graph

    resources = {"graph_io_manager": KuzuDBIOManager(db_path=str(tmp_path / "graph"))}
    instance = DagsterInstance.ephemeral()
    for key in ("c1", "c2"):
        result = materialize(
            [lineage_graph, reader], partition_key=key, resources=resources, instance=instance
        )
        assert result.success
    files = sorted(
        str(p.relative_to(tmp_path)) for p in (tmp_path / "graph").rglob("*") if p.is_file()
    )
    assert files == ["graph/lineage_graph/c1.kuzu", "graph/lineage_graph/c2.kuzu"]

    db = tmp_path / "graph" / "lineage_graph" / "c2.kuzu"
    pairs = _cypher(db, "MATCH (d:Draft)-[:PARENT_OF]->(e:Essay) RETURN d.id, e.id ORDER BY e.id")
    assert pairs == [("d_c2_1", "e_c2_1"), ("d_c2_1", "e_c2_2"), ("d_c2_2", "e_c2_3")]
    chain = _cypher(
        db,
        "MATCH (d:Draft)-[:PARENT_OF]->(e:Essay)-[:PARENT_OF]->(v:Evaluation) RETURN d.template, v.model, v.score ORDER BY v.model",
    )
    assert chain == [("links-v1", "m1", 8), ("links-v1", "m2", 7)]

    graph = loaded["c1"]
    expected = lineage("c1")
    assert set(graph.nodes) == {"Draft", "Essay", "Evaluation"}
    for label, frame in expected.nodes.items():
        assert graph.nodes[label].equals(frame.sort("id")), label
    got_edges = {(e.label, e.from_label, e.to_label): e.frame for e in graph.edges}
    for edge in expected.edges:
        assert got_edges[(edge.label, edge.from_label, edge.to_label)].equals(
            edge.frame.sort("from", "to")
        )

    [materialization] = result.asset_materializations_for_node("lineage_graph")
    assert materialization.metadata["node_count"].value == 7
    assert materialization.metadata["edge_count"].value == 5


def test_rewrite_replaces_the_whole_graph(tmp_path: Path) -> None:
    graphs = iter([lineage("a"), GraphData(nodes={"Draft": pl.DataFrame({"id": ["only"]})})])

    @asset(io_manager_key="graph_io_manager")
    def g() -> GraphData:
        return next(graphs)

    root = tmp_path / "graphs"
    resources = {"graph_io_manager": KuzuDBIOManager(db_path=str(root))}
    instance = DagsterInstance.ephemeral()
    for _ in range(2):
        assert materialize([g], resources=resources, instance=instance).success
    graph = read_graph(root / "g.kuzu")
    assert list(graph.nodes) == ["Draft"] and graph.nodes["Draft"]["id"].to_list() == ["only"]
    assert graph.edges == ()
    assert sorted(p.name for p in root.iterdir()) == ["g.kuzu"]  # no temporary files left


def test_edges_to_unknown_nodes_are_refused(tmp_path: Path) -> None:
    bad = GraphData(
        nodes={"Draft": pl.DataFrame({"id": ["d1"]}), "Essay": pl.DataFrame({"id": ["e1"]})},
        edges=(
            EdgeSet("PARENT_OF", "Draft", "Essay", pl.DataFrame({"from": ["d1"], "to": ["e9"]})),
        ),
    )

    @asset(io_manager_key="graph_io_manager")
    def g() -> GraphData:
        return bad

    with pytest.raises(
        ConfigError, match=r"PARENT_OF.*'to' ids not in node table 'Essay': \['e9'\]"
    ):
        materialize(
            [g],
            resources={"graph_io_manager": KuzuDBIOManager(db_path=str(tmp_path))},
            instance=DagsterInstance.ephemeral(),
        )
    assert list(tmp_path.rglob("*.kuzu")) == []


def test_graph_manager_refuses_other_values(tmp_path: Path) -> None:
    @asset(io_manager_key="graph_io_manager")
    def g() -> dict:
        return {"nodes": {}}

    with pytest.raises(TypeError, match="stores GraphData values"):
        materialize(
            [g],
            resources={"graph_io_manager": KuzuDBIOManager(db_path=str(tmp_path))},
            instance=DagsterInstance.ephemeral(),
        )


def test_graph_validation_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="needs an 'id' column"):
        GraphData(nodes={"Draft": pl.DataFrame({"name": ["x"]})}).validate()
    with pytest.raises(ConfigError, match=r"duplicate ids: \['x'\]"):
        GraphData(nodes={"Draft": pl.DataFrame({"id": ["x", "x"]})}).validate()
    with pytest.raises(ConfigError, match="same property columns"):
        GraphData(
            nodes={"A": pl.DataFrame({"id": ["a"]}), "B": pl.DataFrame({"id": ["b"]})},
            edges=(
                EdgeSet("R", "A", "B", pl.DataFrame({"from": ["a"], "to": ["b"], "w": [1]})),
                EdgeSet("R", "B", "A", pl.DataFrame({"from": ["b"], "to": ["a"]})),
            ),
        ).validate()


_WRITE_WITHOUT_PANDAS = """
import sys, tempfile
from dagster import DagsterInstance, asset, materialize
from daydreaming_dagster.io_managers import KuzuDBIOManager
from tests.io_managers.test_graph import lineage

tempfile.tempdir = sys.argv[2]  # staging files land under a path with a quote in it

@asset(io_manager_key="graph_io_manager")
def g():
    return lineage("q")

resources = {"graph_io_manager": KuzuDBIOManager(db_path=sys.argv[1])}
assert materialize([g], resources=resources, instance=DagsterInstance.ephemeral()).success
print("pandas imported:", "pandas" in sys.modules)
"""


def test_graph_is_copied_from_staged_files_without_importing_pandas(tmp_path: Path) -> None:
    """Kuzu's data-frame parameters import pandas (half a second per process); the manager
    stages Parquet files instead, and quotes their paths even when the temp dir has a quote."""
    import subprocess
    import sys

    staging = tmp_path / "it's here"
    staging.mkdir()
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _WRITE_WITHOUT_PANDAS, str(tmp_path / "graphs"), str(staging)],
                          capture_output=True, text=True, cwd=root, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pandas imported: False" in done.stdout
    assert list(staging.iterdir()) == []  # staged files removed
    graph = read_graph(tmp_path / "graphs" / "g.kuzu")
    assert graph.node_count == 7 and graph.edge_count == 5
    assert lineage("q").nodes["Evaluation"].equals(graph.nodes["Evaluation"])
