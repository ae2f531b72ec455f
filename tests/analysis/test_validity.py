"""Validity of the analysis on simulated data with planted effects (issue #12, item 9).

Seeds and resamples are kept small so the whole file runs in well under a minute; the
tolerances are set from the binomial spread those counts imply, not tuned to pass.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from daydreaming_dagster.analysis import analyze_scores, krippendorff_alpha_interval

from .simulate import simulate

SEEDS = 60
N_BOOT = 200


@pytest.fixture(scope="module")
def coverage_runs() -> list[tuple[object, object]]:
    runs = []
    for seed in range(SEEDS):
        planted = simulate(seed, essays_per_cell=12, draft_effects={"d1": 0.0, "d2": 1.0},
                           essay_effects={"x": 0.0, "y": 0.3})
        runs.append((planted, analyze_scores(planted.table, seed=seed, n_boot=N_BOOT, top_k=(1,))))
    return runs


def test_level_mean_cis_cover_the_planted_means_at_close_to_95_percent(coverage_runs) -> None:
    hits = [
        level.ci_low <= planted.level_means[(level.factor, level.level)] <= level.ci_high
        for planted, analysis in coverage_runs
        for level in analysis.levels
        if level.factor in ("draft_template", "essay_template")
    ]
    assert len(hits) == SEEDS * 4
    # 240 correlated checks: binomial sd ~0.014; the percentile bootstrap runs slightly narrow.
    assert 0.88 <= np.mean(hits) <= 0.99, np.mean(hits)


def test_difference_cis_cover_the_planted_differences(coverage_runs) -> None:
    hits = []
    for planted, analysis in coverage_runs:
        for diff in analysis.differences:
            truth = planted.level_means[(diff.factor, diff.level_a)] - planted.level_means[(diff.factor, diff.level_b)]
            hits.append(diff.ci_low <= truth <= diff.ci_high)
    assert len(hits) == SEEDS * 2
    assert 0.87 <= np.mean(hits) <= 0.995, np.mean(hits)


def test_essay_mean_cis_cover_each_essays_true_mean(coverage_runs) -> None:
    hits = [
        essay.ci_low <= planted.essay_means[essay.essay_gen_id] <= essay.ci_high
        for planted, analysis in coverage_runs
        for essay in analysis.essays
    ]
    # Thousands of checks; evaluator biases are fixed per simulation so the pooled interval
    # is a little conservative (by design), never anti-conservative.
    assert 0.93 <= np.mean(hits) <= 0.985, np.mean(hits)


def test_the_largest_planted_axis_gets_the_largest_share_and_null_axes_reach_zero() -> None:
    for seed in range(3):
        planted = simulate(seed, essays_per_cell=6, combos=8, combo_sd=0.0,
                           draft_effects={"d1": 0.0, "d2": 1.5}, essay_effects={"x": 0.0, "y": 0.0},
                           evaluators=4, replicates=2)
        analysis = analyze_scores(planted.table, seed=seed, n_boot=N_BOOT, top_k=(1,))
        assert analysis.top_factor is not None and analysis.top_factor.component == "draft_template"
        for null_axis in ("essay_template", "combo_id"):
            share = analysis.variance_of(null_axis)
            assert share is not None and share.ci_low == 0.0 < share.ci_high, share  # reaches 0, not [0, 0]
        planted_share = analysis.variance_of("draft_template")
        assert planted_share.ci_low > 0.1


def test_variance_components_recover_the_planted_variances() -> None:
    """Averaged over seeds, the estimates land near the planted components."""
    estimates = []
    for seed in range(8):
        planted = simulate(seed, essays_per_cell=20, draft_effects={"d1": -0.5, "d2": 0.5},
                           essay_effects={"x": 0.0, "y": 0.0}, evaluators=4, evaluator_sd=0.0,
                           essay_sd=0.5, noise_sd=1.0, replicates=2)
        analysis = analyze_scores(planted.table, seed=seed, n_boot=20, top_k=(1,))
        estimates.append({v.component: v.variance for v in analysis.variance})
    mean = {k: np.mean([e[k] for e in estimates]) for k in estimates[0]}
    assert mean["draft_template"] == pytest.approx(0.25, abs=0.08)  # effects ±0.5
    assert mean["essay"] == pytest.approx(0.25, abs=0.08)
    # Replicates split the residual: no planted essay × evaluator disagreement, noise 1.0.
    assert mean["essay x evaluator"] == pytest.approx(0.0, abs=0.06)
    assert mean["replicate"] == pytest.approx(1.0, abs=0.08)
    assert mean["essay_template"] < 0.03


def test_alpha_matches_the_krippendorff_package_with_missing_cells_and_replicates() -> None:
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    planted = simulate(11, essays_per_cell=10, evaluators=5, replicates=2)
    table = planted.table.filter(pl.Series(rng.random(planted.table.height) > 0.3))
    analysis = analyze_scores(table, seed=0, n_boot=100, top_k=(1,))
    wide = table.pivot(on="evaluator", index="essay_gen_id", values="score", aggregate_function="mean")
    matrix = wide.drop("essay_gen_id").to_numpy().astype(float)
    expected = krippendorff.alpha(reliability_data=matrix.T, level_of_measurement="interval")
    assert analysis.alpha == pytest.approx(expected, abs=0.01)
    assert krippendorff_alpha_interval(matrix) == pytest.approx(expected, abs=1e-9)
    low, high = analysis.alpha_ci
    assert low < analysis.alpha < high


def test_ranking_keeps_every_essay_in_play() -> None:
    """An essay with one outstanding score is first in every resample: an essay-level
    bootstrap would drop it from about a third of them."""
    rows = [("star", "a", 10.0)] + [(f"e{i}", j, float(3 + (i + k) % 3)) for i in range(20)
                                     for k, j in enumerate(("a", "b"))]
    table = pl.DataFrame(rows, schema=["essay_gen_id", "evaluator", "score"], orient="row")
    analysis = analyze_scores(table, seed=1, n_boot=300)
    star = next(e for e in analysis.essays if e.essay_gen_id == "star")
    assert star.p_top == {1: 1.0, 5: 1.0, 10: 1.0}
    assert analysis.top_tie.is_tie is False
    assert sum(e.p_top[5] for e in analysis.essays) == pytest.approx(5.0)


def test_two_essays_with_the_same_scores_are_a_statistical_tie() -> None:
    rows = [(e, j, s) for e in ("a", "b") for j, s in (("x", 9.0), ("y", 8.0))] + [("c", "x", 2.0), ("c", "y", 3.0)]
    analysis = analyze_scores(pl.DataFrame(rows, schema=["essay_gen_id", "evaluator", "score"], orient="row"),
                              n_boot=200)
    assert analysis.top_tie.is_tie
    assert {e for e, _ in analysis.top_tie.contenders} == {"a", "b"}
    assert "statistical tie" in analysis.top_tie.sentence()


def test_same_seed_same_numbers_other_seed_other_draws() -> None:
    table = simulate(3, essays_per_cell=5).table
    first = analyze_scores(table, seed=5, n_boot=100).to_json()
    assert analyze_scores(table, seed=5, n_boot=100).to_json() == first
    assert analyze_scores(table, seed=6, n_boot=100).to_json() != first


def test_single_scores_make_ranking_stability_not_computable() -> None:
    """With one score per essay nothing tells how much a score scatters: no claimed certainty."""
    table = pl.DataFrame({"essay_gen_id": ["a", "b", "c"], "evaluator": ["x"] * 3, "score": [9.0, 5.0, 3.0]})
    analysis = analyze_scores(table, seed=0, n_boot=50)
    assert all(e.p_top[1] is None for e in analysis.essays)
    assert analysis.top_tie.is_tie is False and analysis.top_tie.contenders == ()
    assert "not computable" in analysis.top_tie.sentence()
    assert analysis.to_json()["essays"][0]["p_top_1"] is None


def test_an_essay_with_one_score_gets_the_spread_of_the_others() -> None:
    """A single high score among noisy essays is no certain first place (the within-essay
    bootstrap would make it first in every resample)."""
    rng = np.random.default_rng(3)
    rows = [("lucky", "x", 9.0)] + [(f"e{i}", j, float(np.clip(round(6 + rng.normal(0, 1.5)), 0, 10)))
                                    for i in range(30) for j in ("x", "y", "z")]
    analysis = analyze_scores(pl.DataFrame(rows, schema=["essay_gen_id", "evaluator", "score"], orient="row"),
                              seed=0, n_boot=2000)
    lucky = next(e for e in analysis.essays if e.essay_gen_id == "lucky")
    assert 0.05 < lucky.p_top[1] < 0.8
    assert lucky.p_top[10] < 0.95  # its own scores alone would keep it in the top 10 always
    assert sum(e.p_top[1] for e in analysis.essays) == pytest.approx(1.0)
