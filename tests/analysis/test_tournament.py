"""The tournament fit and its statistics (issue 20, item 5): against choix, on simulated
tournaments with a planted position bias and ties, disconnected graphs, judges, consistency, tau."""

from __future__ import annotations

import math

import choix
import numpy as np
import polars as pl
import pytest
from scipy.stats import kendalltau

from daydreaming_dagster.analysis import (
    analyze_tournament,
    fit_bradley_terry,
    pair_consistency,
    rank_agreement,
)
from daydreaming_dagster.analysis._tournament import verdict_frame


def simulate(
    theta: np.ndarray, *, gamma: float = 0.0, nu: float = -math.inf, judge: str = "m1", pairs_per_essay: int = 6,
    both_orders: bool = True, seed: int = 0, replicates: int = 1,
) -> pl.DataFrame:
    """Verdicts from the Davidson model with a first-shown effect: random pairs, each judged in
    both orders (when asked), like a Swiss tournament with ``both_orders: true``."""
    rng = np.random.default_rng(seed)
    n = theta.size
    pairs = {tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(n * pairs_per_essay // 2)}
    rows = []
    for i, j in sorted(pairs):
        orders = [(i, j), (j, i)] if both_orders else [(i, j) if rng.random() < 0.5 else (j, i)]
        for rep in range(1, replicates + 1):
            for a, b in orders:
                d = theta[a] - theta[b] + gamma
                weights = np.array([math.exp(d / 2), math.exp(-d / 2), math.exp(nu) if math.isfinite(nu) else 0.0])
                verdict = ("A", "B", "tie")[rng.choice(3, p=weights / weights.sum())]
                rows.append({"comparison_gen_id": f"p_{judge}_{a}_{b}_{rep}", "essay_a": f"e{a:03d}",
                             "essay_b": f"e{b:03d}", "judge": judge, "template_id": "compare-overall",
                             "replicate": rep, "round": 1, "verdict": verdict})
    return verdict_frame(rows)


def _choix_data(verdicts: pl.DataFrame) -> list[tuple[int, int]]:
    """(winner, loser) index pairs, essays indexed in sorted order."""
    essays = sorted(set(verdicts["essay_a"]) | set(verdicts["essay_b"]))
    index = {e: i for i, e in enumerate(essays)}
    return [(index[a], index[b]) if v == "A" else (index[b], index[a])
            for a, b, v in verdicts.select("essay_a", "essay_b", "verdict").iter_rows()]


def test_plain_fit_matches_choix_mle_and_map() -> None:
    theta = np.random.default_rng(3).normal(0, 1, 15)
    verdicts = simulate(theta, pairs_per_essay=8, both_orders=False, replicates=8, seed=4)
    data = _choix_data(verdicts)
    n = theta.size

    mle = fit_bradley_terry(verdicts, ties=False, position=False, ridge=0.0)
    reference = choix.ilsr_pairwise(n, data, tol=1e-12)
    assert mle.converged and mle.n_parts == 1
    np.testing.assert_allclose(mle.strengths, reference - reference.mean(), atol=1e-8)
    assert abs(mle.strengths.mean()) < 1e-12

    # choix's penalty is alpha·Σθ² (no 1/2), ours ridge/2·Σθ²: ridge = 2·alpha is the same MAP.
    for alpha in (0.05, 0.5):
        mine = fit_bradley_terry(verdicts, ties=False, position=False, ridge=2 * alpha)
        theirs = choix.opt_pairwise(n, data, alpha=alpha, tol=1e-12)
        np.testing.assert_allclose(mine.strengths, theirs - theirs.mean(), atol=1e-7)


def test_an_essay_that_wins_everything_is_finite_with_the_ridge_and_flagged_without() -> None:
    rows = [{"essay_a": a, "essay_b": b, "verdict": v} for a, b, v in
            [("e1", "e2", "A"), ("e2", "e1", "B"), ("e1", "e3", "A"), ("e3", "e1", "B"),
             ("e2", "e3", "A"), ("e3", "e2", "B"), ("e2", "e3", "B")]]
    verdicts = verdict_frame(rows)
    fit = fit_bradley_terry(verdicts)
    strength = fit.strength_of()
    assert fit.converged and all(math.isfinite(s) for s in strength.values())
    assert strength["e1"] > strength["e2"] > strength["e3"] and abs(fit.strengths.mean()) < 1e-12
    mle = fit_bradley_terry(verdicts, ties=False, position=False, ridge=0.0)
    assert not mle.converged  # e1's MLE is +infinity: reported, not silently returned as finite


def test_planted_position_bias_and_ties_are_recovered_within_their_intervals() -> None:
    theta = np.random.default_rng(11).normal(0, 1, 40)
    gamma, nu = 0.6, -0.5
    verdicts = simulate(theta, gamma=gamma, nu=nu, pairs_per_essay=12, seed=12)
    result = analyze_tournament(verdicts, seed=1, n_boot=300)
    assert result is not None
    bias = result.pooled.position_bias
    assert bias.ci_low < gamma < bias.ci_high and bias.ci_low > 0  # found, and distinguishable from no bias
    assert bias.p_first_wins_ci_low < 1 / (1 + math.exp(-gamma)) < bias.p_first_wins_ci_high
    judge = result.judges[0]
    truth_tie = math.exp(nu) / (2 + math.exp(nu))
    assert judge.tie_probability == pytest.approx(truth_tie, abs=0.05)
    fitted = {s.essay_gen_id: s.strength for s in result.pooled.strengths}
    planted = {f"e{i:03d}": float(t) for i, t in enumerate(theta)}
    assert rank_agreement(fitted, planted).tau > 0.45  # ~24 verdicts per essay, a quarter of them ties
    covered = [s.ci_low <= planted[s.essay_gen_id] - theta.mean() <= s.ci_high for s in result.pooled.strengths]
    assert np.mean(covered) >= 0.8  # percentile intervals of a shrunk estimate: near, not exactly, 95%
    p1 = [s.p_top_1 for s in result.pooled.strengths]
    p5 = [s.p_top_5 for s in result.pooled.strengths]
    assert sum(p1) == pytest.approx(1.0, abs=0.02) and sum(p5) == pytest.approx(5.0, abs=0.1)
    assert result.pooled.strengths[0].rank == 1


def test_position_bias_intervals_cover_the_planted_value_across_tournaments() -> None:
    covered = 0
    for seed in range(12):
        theta = np.random.default_rng(300 + seed).normal(0, 1, 20)
        verdicts = simulate(theta, gamma=0.0, nu=-0.5, pairs_per_essay=8, seed=400 + seed)
        bias = analyze_tournament(verdicts, seed=seed, n_boot=100).pooled.position_bias
        covered += bias.ci_low < 0.0 < bias.ci_high
    assert covered >= 10  # nominal 95%: 11.4 of 12 expected


def test_disconnected_graph_is_reported_not_ranked() -> None:
    rows = [{"essay_a": a, "essay_b": b, "verdict": v} for a, b, v in
            [("a1", "a2", "A"), ("a2", "a1", "tie"), ("a2", "a3", "A"), ("a3", "a2", "B"),
             ("b1", "b2", "B"), ("b2", "b1", "A")]]
    result = analyze_tournament(verdict_frame(rows), n_boot=20)
    pooled = result.pooled
    assert pooled.n_parts == 2 and pooled.parts == (("a2", "a1", "a3"), ("b2", "b1")) or pooled.parts[0] == tuple(
        s.essay_gen_id for s in pooled.strengths if s.part == 0)
    assert {frozenset(p) for p in pooled.parts} == {frozenset({"a1", "a2", "a3"}), frozenset({"b1", "b2"})}
    assert all(s.rank is None and s.p_top_1 is None and s.p_top_5 is None for s in pooled.strengths)
    assert any("2 unconnected parts" in note and "a1" in note and "b1" in note for note in result.notes)
    # Strengths are centred within each part.
    for part in (0, 1):
        assert abs(sum(s.strength for s in pooled.strengths if s.part == part)) < 1e-9
    data = result.to_dict()
    assert data["connected_parts"] == 2 and sorted(map(len, data["parts"])) == [2, 3]


def test_per_judge_fits_and_the_pooled_fit_keep_humans_apart_unless_asked() -> None:
    theta = np.random.default_rng(31).normal(0, 1.2, 24)
    plus = simulate(theta, gamma=1.0, judge="m-plus", pairs_per_essay=14, seed=32)
    minus = simulate(theta, gamma=-1.0, judge="m-minus", pairs_per_essay=14, seed=33)
    human = simulate(theta, gamma=0.0, nu=0.0, judge="human:ada", pairs_per_essay=4, seed=34)
    verdicts = pl.concat([plus, minus, human])
    result = analyze_tournament(verdicts, seed=3, n_boot=150)
    by_judge = {j.judge: j for j in result.judges}
    assert set(by_judge) == {"m-plus", "m-minus", "human:ada"}
    assert by_judge["human:ada"].is_human and not by_judge["m-plus"].is_human
    assert by_judge["m-plus"].position_bias.ci_low < 1.0 < by_judge["m-plus"].position_bias.ci_high
    assert by_judge["m-minus"].position_bias.ci_low < -1.0 < by_judge["m-minus"].position_bias.ci_high
    assert result.pooled.judges == ("m-minus", "m-plus")  # humans are not pooled by default
    assert result.pooled.n_comparisons == plus.height + minus.height
    assert abs(result.pooled.position_bias.estimate) < 0.3  # a common effect: the panel's average
    assert by_judge["m-plus"].tie_probability == 0.0  # that judge never ties: plain Bradley–Terry for it
    pooled_with = analyze_tournament(verdicts, seed=3, n_boot=20, include_humans=True)
    assert pooled_with.pooled.judges == ("human:ada", "m-minus", "m-plus") and pooled_with.include_humans
    only_humans = analyze_tournament(human, seed=3, n_boot=20)
    assert only_humans.pooled.judges == ("human:ada",) and "only human judges" in only_humans.notes[0]
    tables = result.tables()
    assert set(tables["tournament_judges"]["judge"]) == {"pooled", "m-plus", "m-minus", "human:ada"}
    assert tables["tournament_strengths"].filter(pl.col("judge") == "pooled").height == 24


def test_consistency_on_a_hand_made_example() -> None:
    rows = [
        # agree: e1 wins both orders
        {"essay_a": "e1", "essay_b": "e2", "verdict": "A"}, {"essay_a": "e2", "essay_b": "e1", "verdict": "B"},
        # position flip: the first shown wins both times
        {"essay_a": "e1", "essay_b": "e3", "verdict": "A"}, {"essay_a": "e3", "essay_b": "e1", "verdict": "A"},
        # second-shown both times
        {"essay_a": "e2", "essay_b": "e3", "verdict": "B"}, {"essay_a": "e3", "essay_b": "e2", "verdict": "B"},
        # two ties agree
        {"essay_a": "e1", "essay_b": "e4", "verdict": "tie"}, {"essay_a": "e4", "essay_b": "e1", "verdict": "tie"},
        # tie one way only: disagreement
        {"essay_a": "e2", "essay_b": "e4", "verdict": "tie"}, {"essay_a": "e4", "essay_b": "e2", "verdict": "A"},
        # one order only: not counted
        {"essay_a": "e3", "essay_b": "e4", "verdict": "A"},
        # the same pair in both orders but by two different judges: not counted
        {"essay_a": "e5", "essay_b": "e1", "verdict": "A"},
        {"essay_a": "e1", "essay_b": "e5", "verdict": "B", "judge": "other"},
    ]
    c = pair_consistency(verdict_frame(rows))
    assert (c.n_pairs, c.n_agree) == (5, 2)
    assert (c.first_shown_both, c.second_shown_both, c.tie_mixed) == (1, 1, 1)
    assert c.share == pytest.approx(0.4) and c.ci_low < 0.4 < c.ci_high


def test_kendall_tau_and_its_interval() -> None:
    x = {f"e{i}": float(i) for i in range(5)}
    assert rank_agreement(x, x).tau == pytest.approx(1.0)
    assert rank_agreement(x, {k: -v for k, v in x.items()}).tau == pytest.approx(-1.0)
    y = {"e0": 0.0, "e1": 2.0, "e2": 1.0, "e3": 3.0, "e4": 4.0}
    agreement = rank_agreement(x, y)
    assert agreement.tau == pytest.approx(0.8) and agreement.n == 5  # 9 concordant, 1 discordant of 10
    half = 1.959964 * math.sqrt(0.437 / 1)
    assert agreement.ci_low == pytest.approx(math.tanh(math.atanh(0.8) - half), abs=1e-6)
    assert agreement.ci_high == pytest.approx(math.tanh(math.atanh(0.8) + half), abs=1e-6)
    # Only common essays count; under 5 there is no interval.
    short = rank_agreement(x, {"e0": 1.0, "e1": 0.0, "e2": 2.0, "zz": 9.0})
    assert short.n == 3 and short.ci_low is None
    assert short.tau == pytest.approx(kendalltau([0, 1, 2], [1, 0, 2]).statistic)
    assert rank_agreement(x, {"e0": 1.0}) is None


def test_tau_with_scores_in_the_tournament() -> None:
    theta = np.random.default_rng(41).normal(0, 1.5, 20)
    verdicts = simulate(theta, pairs_per_essay=12, seed=42)
    means = {f"e{i:03d}": float(t) for i, t in enumerate(theta)}
    result = analyze_tournament(verdicts, score_means=means, n_boot=50)
    tau = result.pooled.tau_with_scores
    assert tau.n == 20 and tau.ci_low < tau.tau < tau.ci_high and tau.tau > 0.5
    assert result.to_dict()["tau_with_scores"]["tau"] == pytest.approx(tau.tau)


def test_deterministic_for_a_seed_and_bad_frames_raise() -> None:
    theta = np.random.default_rng(51).normal(0, 1, 10)
    verdicts = simulate(theta, pairs_per_essay=6, seed=52)
    one = analyze_tournament(verdicts, seed=7, n_boot=40).to_dict()
    two = analyze_tournament(verdicts.reverse(), seed=7, n_boot=40).to_dict()
    assert one == two
    assert analyze_tournament(verdict_frame([])) is None
    with pytest.raises(ValueError, match="unknown verdict"):
        fit_bradley_terry(verdict_frame([{"essay_a": "e1", "essay_b": "e2", "verdict": "C"}]))
    with pytest.raises(ValueError, match="with itself"):
        fit_bradley_terry(verdict_frame([{"essay_a": "e1", "essay_b": "e1", "verdict": "A"}]))
