"""``daydream analyze`` on score CSVs and on a cohort, and bad input (issue #12, items 7 and 8)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from daydreaming_dagster.analysis import (
    AnalysisInputError,
    analyze_cohort,
    human_llm_agreement,
    load_score_table,
    prepare_scores,
    write_analysis,
)
from daydreaming_dagster.results.human_ratings import HumanRating, append_rating

from ..results.conftest import COHORT, Store, build_store
from ..support.cli import run_cli
from .simulate import simulate


@pytest.fixture
def store(data_root: Path) -> Store:
    return build_store(data_root)


def _csv(tmp_path: Path, text: str, name: str = "scores.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_scores_csv_json_has_the_documented_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scores.csv"
    simulate(0, essays_per_cell=4).table.with_columns(pl.lit("0-10").alias("scale")).write_csv(path)
    code, out, err = run_cli(["analyze", "--scores", str(path), "--json", "--bootstrap", "50", "--seed", "3"], capsys)
    assert code == 0, err
    data = json.loads(out)
    json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere
    assert data["n_essays"] == 16 and data["n_scores"] == 48
    essay = data["essays"][0]
    assert {"essay_gen_id", "mean", "ci_low", "ci_high", "n", "p_top_1", "p_top_5"} <= set(essay)
    assert essay["ci_low"] <= essay["mean"] <= essay["ci_high"]
    assert set(data["factors"]) == {"combo_id", "draft_template", "essay_template"}
    factor = data["factors"]["draft_template"]
    assert {"level", "mean", "ci_low", "ci_high", "n"} <= set(factor["levels"][0])
    assert len(factor["variance_share_ci"]) == 2 and 0 <= factor["variance_share"] <= 1
    evaluators = data["evaluators"]
    assert -1 <= evaluators["alpha"] <= 1 and len(evaluators["alpha_ci"]) == 2
    assert {"evaluator", "n", "mean", "corr_with_consensus"} <= set(evaluators["per_evaluator"][0])
    assert {"a", "b", "spearman", "n", "ci_low", "ci_high"} == set(evaluators["pairwise"][0]) and len(evaluators["pairwise"]) == 3
    assert data["scale"] == "0-10" and data["normalised"] is False
    # Deterministic for a seed.
    assert run_cli(["analyze", "--scores", str(path), "--json", "--bootstrap", "50", "--seed", "3"], capsys)[1] == out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("essay_gen_id,score\ne1,5\n", "missing column(s) evaluator"),
        ("essay_gen_id,evaluator,score\n", "no scores"),
        ("essay_gen_id,evaluator,score\ne1,a,5\ne1,b,high\n", "row 3: score 'high' is not a number"),
        ("essay_gen_id,evaluator,score\ne1,a,5\ne1,b,\n", "row 3: score is empty"),
        ("essay_gen_id,evaluator,score,model\ne1,a,5,m1\ne1,b,6,m2\n", "column 'model' is not constant for essay 'e1'"),
        ("essay_gen_id,evaluator,score,scale\ne1,a,5,0-10\ne1,b,6,ten\n", "row 3: invalid scale 'ten'"),
        ("essay_gen_id,evaluator,score,scale\ne1,a,11,0-10\n", "row 2: score 11 is outside its scale 0-10"),
    ],
)
def test_bad_score_files_exit_2_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = _csv(tmp_path, text)
    code, out, err = run_cli(["analyze", "--scores", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {path}") and err.count("\n") == 1
    assert expected in err


def test_missing_file_and_both_sources_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["analyze", "--scores", str(tmp_path / "nope.csv")], capsys)
    assert code == 2 and "file not found" in err
    code, _, err = run_cli(["analyze"], capsys)
    assert code == 2 and "either a COHORT or --scores" in err


def test_single_evaluator_reports_agreement_not_computable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, "essay_gen_id,evaluator,score\ne1,a,5\ne2,a,7\ne3,a,6\ne1,a,6\n")
    code, out, err = run_cli(["analyze", "--scores", str(path), "--json", "--bootstrap", "20"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["evaluators"]["alpha"] is None
    assert data["evaluators"]["alpha_note"] == "not computable: only one evaluator"
    assert data["essays"][0]["essay_gen_id"] == "e2"
    code, out, _ = run_cli(["analyze", "--scores", str(path), "--bootstrap", "20"], capsys)
    assert code == 0 and "evaluator agreement: not computable: only one evaluator" in out


def test_one_essay_is_a_documented_partial_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, "essay_gen_id,evaluator,score\ne1,a,5\ne1,b,7\n")
    code, out, err = run_cli(["analyze", "--scores", str(path), "--json", "--bootstrap", "20"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["n_essays"] == 1 and data["essays"][0]["p_top_1"] == 1.0
    assert data["variance"] == [] and data["top_tie"]["is_tie"] is False
    assert any("one essay" in note for note in data["notes"])


def test_different_scales_are_normalised_and_said_so() -> None:
    table = pl.DataFrame({"essay_gen_id": ["e1", "e1", "e2", "e2"], "evaluator": ["a", "b", "a", "b"],
                          "score": [9.0, 10.0, 0.0, 5.0], "scale": ["0-9", "0-10", "0-9", "0-10"]})
    prepared = prepare_scores(table)
    assert prepared.normalised and prepared.scale == "0-1"
    assert sorted(prepared.y.tolist()) == [0.0, 0.5, 1.0, 1.0]
    with pytest.raises(AnalysisInputError, match="row 2: no scale while other rows use 0-10"):
        prepare_scores(pl.DataFrame({"essay_gen_id": ["e1", "e2"], "evaluator": ["a", "a"], "score": [1.0, 2.0],
                                     "scale": ["0-10", None]}))


def test_cohort_table_with_human_ratings(store: Store) -> None:
    append_rating(store.root, COHORT, HumanRating(store.e_a, "ada", 4.0, "0-9"))
    append_rating(store.root, COHORT, HumanRating(store.e_copy, "ada", 9.0, "0-9"))
    table = load_score_table(store.root, COHORT)
    assert table.columns == ["essay_gen_id", "evaluator", "score", "scale", "draft_gen_id", "combo_id", "draft_template",
                             "draft_llm", "essay_template", "essay_llm", "evaluation_template", "evaluation_llm"]
    human = table.filter(pl.col("evaluator") == "human/ada")
    assert human.height == 2 and set(human["evaluation_template"]) == {"human"}
    assert human.filter(pl.col("essay_gen_id") == store.e_copy)["essay_llm"].to_list() == ["(copy)"]
    assert load_score_table(store.root, COHORT, include_human=False).height == 4

    # Humans are their own panel: the LLM statistics keep the LLM scale and count only LLM scores.
    analysis = analyze_cohort(store.root, COHORT, n_boot=50)
    assert not analysis.normalised and analysis.scale == "0-10" and analysis.n_scores == 4
    assert analysis.humans is not None and [r.rater for r in analysis.humans.raters] == ["human/ada"]
    pooled = analyze_cohort(store.root, COHORT, n_boot=50, include_humans=True)
    assert pooled.normalised and any("normalised to 0-1" in n for n in pooled.notes) and pooled.n_scores == 6
    assert human_llm_agreement(table.clear()) == []
    rows = human_llm_agreement(table)
    assert {(r.human_evaluator, r.llm_evaluator) for r in rows} == {
        ("human/ada", "rubric/m1"), ("human/ada", "rubric/m2"), ("human/ada", "consensus")}
    assert all(r.spearman is None for r in rows)  # two essays: below the 3 a correlation needs
    assert {r.llm_evaluator: r.n for r in rows} == {"rubric/m1": 2, "rubric/m2": 1, "consensus": 2}
    files = write_analysis(store.root, COHORT, analysis)
    written = pl.read_csv(files["human_vs_llm"])
    assert written.columns == ["human_evaluator", "llm_evaluator", "spearman", "n", "ci_low", "ci_high"]
    assert written.height == 3
    assert pl.read_csv(files["essays"]).columns == ["essay_gen_id", "mean", "ci_low", "ci_high", "n",
                                                    "p_top_1", "p_top_5", "p_top_10", "raw_mean", "n_evaluators"]
    summary = json.loads(files["summary"].read_text())
    assert summary["n_scores"] == 4 and summary["humans"]["raters"][0]["n"] == 2


def test_self_consistency_from_repeated_scores() -> None:
    rows = [(f"e{i}", "steady", float(i)) for i in range(6) for _ in range(2)]
    rows += [(f"e{i}", "noisy", float(i % 2) * 9) for i in range(6)] + [(f"e{i}", "noisy", 9.0 - (i % 2) * 9) for i in range(6)]
    table = pl.DataFrame(rows, schema=["essay_gen_id", "evaluator", "score"], orient="row")
    from daydreaming_dagster.analysis import analyze_scores

    by_name = {e.evaluator: e for e in analyze_scores(table, n_boot=20).evaluators}
    assert by_name["steady"].n_repeated == 6 and by_name["steady"].replicate_sd == 0.0 and by_name["steady"].icc == 1.0
    assert by_name["noisy"].icc < 0 and by_name["noisy"].replicate_sd > 6


def test_daydream_analyze_cohort_writes_the_analysis_files(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["analyze", COHORT, "--data-root", str(store.root), "--bootstrap", "50"], capsys)
    assert code == 0, err
    assert out.startswith("2 essays, 4 scores on 0-10")
    directory = store.root / "results" / COHORT / "analysis"
    assert {p.name for p in directory.iterdir()} >= {"essays.csv", "levels.csv", "variance.csv", "evaluators.csv",
                                                     "pairwise.csv", "human_vs_llm.csv", "clusters.csv",
                                                     "diversity.csv", "summary.json"}
    code, _, err = run_cli(["analyze", "ghost", "--data-root", str(store.root)], capsys)
    assert code == 2 and err.startswith("error: cohort 'ghost' not found")


def test_cli_plans_the_next_cohort_and_keeps_humans_apart_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .simulate_design import simulate_cohort

    path = tmp_path / "scores.csv"
    simulate_cohort(3, combos=3, humans=1, replicates=2, interaction_sd=0.4).table.write_csv(path)
    code, out, err = run_cli(["analyze", "--scores", str(path), "--json", "--bootstrap", "30",
                              "--target-width", "0.4"], capsys)
    assert code == 0, err
    data = json.loads(out)
    advice = data["design_advice"]
    assert advice["target_half_width"] == 0.4 and advice["recommended"]["half_width"] <= 0.4
    assert advice["current"]["evaluators"] == 3 and advice["current"]["replicates"] == 2
    assert data["design"]["unit"] == "draft" and data["include_humans"] is False
    assert data["humans"]["raters"][0]["rater"] == "human/rater0"
    assert {e["evaluator"] for e in data["evaluators"]["per_evaluator"]} == {"judge0", "judge1", "judge2"}
    code, out, _ = run_cli(["analyze", "--scores", str(path), "--bootstrap", "30", "--include-humans"], capsys)
    assert code == 0 and "human raters pooled into the statistics above" in out
    code, _, err = run_cli(["analyze", "--scores", str(path), "--target-width", "-1"], capsys)
    assert code == 2 and "--target-width must be a positive half-width, got -1" in err


def test_draft_gen_id_must_be_constant_per_essay(tmp_path: Path) -> None:
    table = pl.DataFrame({"essay_gen_id": ["e1", "e1"], "evaluator": ["a", "b"], "score": [1.0, 2.0],
                          "draft_gen_id": ["d1", "d2"]})
    with pytest.raises(AnalysisInputError, match="column 'draft_gen_id' is not constant for essay 'e1'"):
        prepare_scores(table)
