"""Diversity (near-duplicate clusters, similarity to a target) and the report's analysis sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from daydreaming_dagster.analysis._diversity import text_diversity
from daydreaming_dagster.cohorts.spec import parse_spec
from daydreaming_dagster.errors import SpecError
from daydreaming_dagster.reporting import write_cohort_report

from ..results.conftest import COHORT, Store, build_store

TEXTS = {
    "e1": "Tide pools teach error correcting codes: redundancy protects fragile signals from waves.",
    "e2": "Tide pools teach error correcting codes: redundancy protects fragile signals from the waves.",
    "e3": "Jazz improvisation works like an apprenticeship where mistakes become the lesson.",
    "e4": "Ant foraging trails resemble library classification schemes that grow by use.",
}


def test_near_duplicates_cluster_and_the_target_is_closest_to_its_rediscovery() -> None:
    ids = list(TEXTS)
    target = "An apprenticeship in jazz improvisation: every mistake is a lesson."
    rows, by_level = text_diversity("essay", ids, [TEXTS[i] for i in ids],
                                    {"essay_template": ["a", "a", "b", "b"]}, target)
    cluster = {r.gen_id: r.cluster for r in rows}
    assert cluster["e1"] == cluster["e2"] == 1 and len(set(cluster.values())) == 3
    assert {r.gen_id: r.cluster_size for r in rows}["e1"] == 2
    closest = max(rows, key=lambda r: r.target_similarity)
    assert closest.gen_id == "e3"
    levels = {row["level"]: row for row in by_level}
    assert levels["a"]["n_clusters"] == 1 and levels["b"]["n_clusters"] == 2
    assert levels["a"]["mean_pairwise_distance"] < 0.2 < levels["b"]["mean_pairwise_distance"]


def test_spec_analysis_target_is_relative_to_the_spec_and_must_exist(tmp_path: Path) -> None:
    spec_file = tmp_path / "config.yaml"
    (tmp_path / "known.md").write_text("the known insight", encoding="utf-8")
    spec = parse_spec({"axes": {"draft_template": ["a"]}, "analysis": {"target": "known.md"}}, source=spec_file)
    assert spec.analysis_target == tmp_path / "known.md"
    with pytest.raises(SpecError, match=r"config.yaml: analysis.target: file not found: .*missing.md"):
        parse_spec({"axes": {"draft_template": ["a"]}, "analysis": {"target": "missing.md"}}, source=spec_file)
    with pytest.raises(SpecError, match="analysis: unknown key"):
        parse_spec({"axes": {"draft_template": ["a"]}, "analysis": {"targte": "known.md"}}, source=spec_file)


@pytest.fixture
def store(data_root: Path) -> Store:
    return build_store(data_root)


def test_report_has_the_analysis_sections_with_plots(store: Store) -> None:
    built = write_cohort_report(store.root, COHORT, top_n=2, n_boot=50)
    markdown = built.report_md.read_text(encoding="utf-8")
    for title in ("## Ranking with confidence", "## Evaluator agreement", "## Variance by axis",
                  "## Diversity and near-duplicates"):
        assert title in markdown
    assert "![level means with confidence intervals](analysis_forest.png)" in markdown
    assert "![variance shares](analysis_variance.png)" in markdown
    assert "![agreement heatmap](analysis_agreement.png)" in markdown
    reports = built.report_md.parent
    for name in ("analysis_forest.png", "analysis_variance.png", "analysis_agreement.png"):
        assert (reports / name).read_bytes().startswith(b"\x89PNG")
    page = built.report_html.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4  # score distributions + three analysis plots
    assert built.analysis is not None and built.analysis.n_scores == 4
    assert (store.root / "results" / COHORT / "analysis" / "essays.csv").is_file()
    assert "Krippendorff's alpha (interval) =" in markdown


def test_report_says_when_the_top_is_a_tie_and_when_scores_were_normalised(store: Store) -> None:
    from daydreaming_dagster.results.human_ratings import HumanRating, append_rating

    append_rating(store.root, COHORT, HumanRating(store.e_a, "ada", 9.0, "0-9"))
    append_rating(store.root, COHORT, HumanRating(store.e_copy, "ada", 0.0, "0-9"))  # splits e_copy: 0.9 vs 0
    markdown = write_cohort_report(store.root, COHORT, n_boot=50).report_md.read_text(encoding="utf-8")
    # Human ratings on 0-9 are their own panel: the LLM statistics stay on the LLM scale.
    assert "normalise scores on different scales" not in markdown
    assert "## Human raters" in markdown and "human/ada" in markdown
    assert "The top of the ranking is a statistical tie" in markdown


def test_semantic_embeddings_ship_in_the_wheel_and_find_paraphrases() -> None:
    """The optional ``embeddings`` extra (installed in the dev group): WordLlama loads its
    weights and tokenizer from the installed package, with no network."""
    pytest.importorskip("wordllama")
    ids = list(TEXTS)
    target = "Error-correcting codes, as learned from the tide pools: redundancy shields weak signals."
    rows, _ = text_diversity("essay", ids, [TEXTS[i] for i in ids], {}, target, method="wordllama")
    similarity = {r.gen_id: r.target_similarity for r in rows}
    assert max(similarity, key=similarity.get) in ("e1", "e2")
    assert {r.gen_id: r.cluster for r in rows}["e1"] == {r.gen_id: r.cluster for r in rows}["e2"]


def test_spec_similarity_method_is_validated(tmp_path: Path) -> None:
    spec_file = tmp_path / "config.yaml"
    assert parse_spec({"axes": {"a": ["x"]}, "analysis": {"similarity": "wordllama"}},
                      source=spec_file).analysis_similarity == "wordllama"
    with pytest.raises(SpecError, match="analysis.similarity: unknown method 'bert'; use one of tfidf, wordllama"):
        parse_spec({"axes": {"a": ["x"]}, "analysis": {"similarity": "bert"}}, source=spec_file)


def test_the_analysis_is_reused_only_for_identical_inputs(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from daydreaming_dagster import analysis
    from daydreaming_dagster.analysis import _api

    calls: list[int] = []
    real = _api.analyze_scores

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_api, "analyze_scores", counting)
    analysis.forget_recent_analyses()
    first = analysis.analyze_cohort(store.root, COHORT, n_boot=50)
    assert analysis.analyze_cohort(store.root, COHORT, n_boot=50) is first
    assert len(calls) == 1
    analysis.analyze_cohort(store.root, COHORT, n_boot=50, seed=1)  # other settings: computed
    assert len(calls) == 2
    text = store.layer.read_parsed("essay", store.e_a)
    store.layer.write_parsed("essay", store.e_a, text + " A changed ending.")  # same scores, other text
    changed = analysis.analyze_cohort(store.root, COHORT, n_boot=50)
    assert len(calls) == 3 and changed is not first
