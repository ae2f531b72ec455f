"""The results assets through real Dagster ``materialize`` on a temporary instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from daydreaming_dagster import analysis, results
from daydreaming_dagster.assets.results import ANALYSIS_TABLES, RESULTS_ASSETS, to_graph_data
from daydreaming_dagster.io_managers import (
    DuckDBIOManager,
    FilesystemIOManager,
    GraphData,
    InMemoryIOManager,
    KuzuDBIOManager,
    storage_location,
)
from daydreaming_dagster.partitions import cohort_partitions
from daydreaming_dagster.resources import DataRootResource

from ..results.conftest import COHORT, Store, build_store

ASSET_NAMES = {"evaluation_scores", "essay_aggregates", "evaluator_pivot", "template_model_summaries",
               "top_essays", "lineage_graph", "cohort_report", *(f"analysis_{name}" for name in ANALYSIS_TABLES)}


@pytest.fixture
def store(data_root: Path) -> Store:
    return build_store(data_root)


@pytest.fixture
def instance() -> DagsterInstance:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(cohort_partitions.name, [COHORT, "ghost"])
    return instance


def _materialize(instance: DagsterInstance, root: Path, managers: dict[str, Any], partition: str = COHORT, **kw: Any):
    return materialize(
        RESULTS_ASSETS,
        partition_key=partition,
        instance=instance,
        resources={"data_root": DataRootResource(root=str(root)), **managers},
        run_config={"ops": {name: {"config": {"top_n": 1}} for name in ("top_essays", "cohort_report")}},
        **kw,
    )


def test_assets_in_memory(store: Store, instance: DagsterInstance) -> None:
    memory = InMemoryIOManager()
    result = _materialize(instance, store.root, {
        "table_io_manager": memory, "json_io_manager": memory, "graph_io_manager": memory})
    assert result.success
    stored = {path[-1]: value for (path, key), value in memory.stored().items() if key == COHORT}
    assert set(stored) == ASSET_NAMES

    expected_scores = results.evaluation_scores(store.root, COHORT)
    assert stored["evaluation_scores"].equals(expected_scores)
    assert stored["essay_aggregates"].equals(results.essay_aggregates(expected_scores))
    assert stored["evaluator_pivot"].shape == (3, 3)
    assert stored["template_model_summaries"].equals(results.template_model_summaries(expected_scores))
    assert [e["essay_gen_id"] for e in stored["top_essays"]["essays"]] == [store.e_copy]  # top_n=1 from config
    graph = stored["lineage_graph"]
    assert isinstance(graph, GraphData) and graph.node_count == 16
    graph.validate()
    report = stored["cohort_report"]
    assert Path(report["report_md"]).is_file() and Path(report["report_html"]).is_file()
    assert report["top_essays"] == [f"results/{COHORT}/top_essays/01_{store.e_copy}.md"]
    assert all(Path(p).is_file() for p in report["csv_files"].values())

    metadata = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert metadata["evaluation_scores"]["parse_status"].value == {"ok": 4, "parse_error": 1, "raw_failed": 1, "missing": 2}
    assert metadata["evaluation_scores"]["dagster/row_count"].value == 8
    plot = metadata["cohort_report"]["score_distributions"].value
    assert plot.startswith("![score distributions](data:image/png;base64,iVBORw0KGgo")  # base64 of the PNG signature
    assert metadata["top_essays"]["count"].value == 1

    analysis.forget_recent_analyses()  # recompute from the files, not the run's reused result
    expected = analysis.analyze_cohort(store.root, COHORT)
    assert stored["analysis_essays"].equals(expected.essays_frame())
    assert stored["analysis_variance"].equals(expected.variance_frame())
    assert stored["analysis_essays"]["essay_gen_id"].to_list() == [store.e_copy, store.e_a]
    assert metadata["analysis_evaluators"]["alpha"].value == pytest.approx(expected.alpha)
    assert metadata["analysis_variance"]["top_factor"].value == expected.top_factor.component
    assert (store.root / "results" / COHORT / "analysis" / "essays.csv").is_file()


def test_a_results_run_analyses_the_cohort_once(
    store: Store, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """score_analysis and the report it feeds share one analysis of the same inputs."""
    from daydreaming_dagster.analysis import _api

    calls: list[int] = []
    real = _api.analyze_scores

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_api, "analyze_scores", counting)
    analysis.forget_recent_analyses()
    memory = InMemoryIOManager()
    managers = {"table_io_manager": memory, "json_io_manager": memory, "graph_io_manager": memory}
    assert _materialize(instance, store.root, managers).success
    assert len(calls) == 1
    first = memory.stored()[(("analysis_human_vs_llm",), COHORT)]
    assert first.height == 0

    from daydreaming_dagster.results.human_ratings import HumanRating, append_rating

    append_rating(store.root, COHORT, HumanRating(store.e_a, "ada", 10.0, "0-10"))  # new input: analysed afresh
    assert _materialize(instance, store.root, managers).success
    assert len(calls) == 2
    # Humans are their own panel: the LLM essay table is unchanged, the human one is new.
    again = memory.stored()[(("analysis_human_vs_llm",), COHORT)]
    assert again.height > 0 and set(again["human_evaluator"]) == {"human/ada"}
    report = (store.root / "cohorts" / COHORT / "reports" / "report.md").read_text(encoding="utf-8")
    assert "human/ada" in report  # the report shows the new analysis, not the reused one


def _stored_scores(manager: Any, kind: str, asset: str = "evaluation_scores") -> pl.DataFrame:
    location = storage_location((asset,), COHORT)
    if kind == "filesystem":
        return pl.read_parquet(manager.path_for(location, "parquet"))
    import duckdb

    with duckdb.connect(manager.db_path, read_only=True) as con:
        return con.sql(f"SELECT * FROM {manager.qualified_table(location)} WHERE partition_key = ?",
                       params=[COHORT]).pl()


@pytest.mark.parametrize("kind", ["duckdb", "filesystem"])
def test_assets_on_files_and_graph_database(store: Store, instance: DagsterInstance, tmp_path: Path, kind: str) -> None:
    """The dev set (JSON files, DuckDB tables, Kuzu graph), and Parquet files for tables."""
    if kind == "duckdb":
        tables: Any = DuckDBIOManager(db_path=str(tmp_path / "results.duckdb"))
    else:
        tables = FilesystemIOManager(base_path=str(tmp_path / "tables"))
    documents = FilesystemIOManager(base_path=str(tmp_path / "json"))
    graph_manager = KuzuDBIOManager(db_path=str(tmp_path / "graph"))
    result = _materialize(instance, store.root, {
        "table_io_manager": tables, "json_io_manager": documents, "graph_io_manager": graph_manager})
    assert result.success

    stored = _stored_scores(tables, kind)
    expected = results.evaluation_scores(store.root, COHORT)
    assert stored.select(expected.columns).equals(expected)
    essays = _stored_scores(tables, kind, "analysis_essays")  # one table per analysis, keyed by cohort
    # Raw means carry the offsets of whoever scored each essay; the ranking uses adjusted means.
    assert essays.select("essay_gen_id", "raw_mean").rows() == [(store.e_copy, 9.0), (store.e_a, 7.0)]
    assert essays.select("essay_gen_id", "mean").rows() == [(store.e_copy, 8.25), (store.e_a, 6.75)]
    assert documents.path_for(storage_location(("top_essays",), COHORT), "json").is_file()
    assert documents.path_for(storage_location(("cohort_report",), COHORT), "json").is_file()

    import kuzu

    database = kuzu.Database(str(graph_manager.path_for(storage_location(("lineage_graph",), COHORT))), read_only=True)
    connection = kuzu.Connection(database)
    try:
        pairs = connection.execute(
            "MATCH (d:Draft)-[:PARENT_OF]->(e:Essay) RETURN d.id AS draft, e.id AS essay ORDER BY essay").get_as_pl()
        assert sorted(pairs.rows()) == sorted([(store.d_a, store.e_a), (store.d_a, store.e_copy), (store.d_b, store.e_b)])
        means = connection.execute(
            "MATCH (e:Essay)-[:PARENT_OF]->(v:Evaluation) WHERE v.score IS NOT NULL "
            "RETURN e.id AS essay, avg(v.score) AS mean ORDER BY mean DESC").get_as_pl()
        assert means.rows() == [(store.e_copy, 9.0), (store.e_a, 7.0)]
        concepts = connection.execute(
            "MATCH (d:Draft)-[:USES]->(c:Concept) WHERE d.id = $draft RETURN c.id AS concept ORDER BY concept",
            {"draft": store.d_b}).get_as_pl()
        assert concepts["concept"].to_list() == ["beta", "gamma"]
    finally:
        connection.close()
        database.close()


def test_unknown_cohort_fails_with_a_clear_error(store: Store, instance: DagsterInstance) -> None:
    memory = InMemoryIOManager()
    result = _materialize(instance, store.root, {
        "table_io_manager": memory, "json_io_manager": memory, "graph_io_manager": memory},
        partition="ghost", raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures
    messages = " ".join(e.step_failure_data.error.to_string() for e in failures)
    assert "CohortNotFoundError: cohort 'ghost' not found" in messages


def test_to_graph_data_keeps_every_node_and_edge(store: Store) -> None:
    graph = results.build_lineage_graph(store.root, COHORT)
    data = to_graph_data(graph)
    data.validate()
    assert data.node_count == graph.node_count and data.edge_count == graph.edge_count
    assert set(data.edge_labels()) == {"PARENT_OF", "USES"}
