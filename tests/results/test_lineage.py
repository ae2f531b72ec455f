"""The lineage graph value: nodes per stage with properties, PARENT_OF and USES edges."""

from __future__ import annotations

from daydreaming_dagster.results import build_lineage_graph

from .conftest import COHORT, Store


def test_nodes_and_edges(store: Store) -> None:
    graph = build_lineage_graph(store.root, COHORT)
    assert {label: frame.height for label, frame in graph.nodes.items()} == {
        "Draft": 2, "Essay": 3, "Evaluation": 8, "Concept": 3}
    edges = {(e.label, e.from_label, e.to_label): sorted(e.frame.rows()) for e in graph.edges}
    assert edges[("PARENT_OF", "Draft", "Essay")] == sorted(
        [(store.d_a, store.e_a), (store.d_a, store.e_copy), (store.d_b, store.e_b)])
    # Every evaluation with known metadata hangs off its essay; the ghost has no known parent.
    assert len(edges[("PARENT_OF", "Essay", "Evaluation")]) == 7
    assert (store.e_a, store.v_a_m1_r2) in edges[("PARENT_OF", "Essay", "Evaluation")]
    assert edges[("USES", "Draft", "Concept")] == sorted(
        [(store.d_a, "alpha"), (store.d_a, "beta"), (store.d_b, "beta"), (store.d_b, "gamma")])
    assert graph.edge_count == 3 + 7 + 4 and graph.node_count == 16


def test_node_properties_carry_templates_models_scores(store: Store) -> None:
    graph = build_lineage_graph(store.root, COHORT)
    essays = {r["id"]: r for r in graph.nodes["Essay"].iter_rows(named=True)}
    assert (essays[store.e_a]["template"], essays[store.e_a]["llm"], essays[store.e_a]["mean_score"],
            essays[store.e_a]["n_scores"]) == ("expand", "m1", 7.0, 3)
    assert (essays[store.e_copy]["mode"], essays[store.e_copy]["llm"]) == ("copy", None)
    assert essays[store.e_b]["mean_score"] is None and essays[store.e_b]["n_scores"] == 0
    evaluations = {r["id"]: r for r in graph.nodes["Evaluation"].iter_rows(named=True)}
    assert (evaluations[store.v_a_m2]["score"], evaluations[store.v_a_m2]["llm"]) == (6.0, "m2")
    assert evaluations[store.v_copy_m2_parse_error]["status"] == "parse_error"
    drafts = {r["id"]: r for r in graph.nodes["Draft"].iter_rows(named=True)}
    assert (drafts[store.d_b]["template"], drafts[store.d_b]["llm"], drafts[store.d_b]["combo_id"]) == (
        "links", "m2", store.combo_b)
    assert "score" not in graph.nodes["Draft"].columns
