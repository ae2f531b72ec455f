"""Adaptive allocation on a simulated cohort: the rotation, the greedy rounds, the replay."""

from __future__ import annotations

from collections import Counter

import numpy as np

from daydreaming_dagster.adaptive import (
    Candidate,
    analysis_fit,
    first_round,
    next_round,
    select,
    stopping_value,
)
from daydreaming_dagster.cohorts.spending import AdaptiveEvaluation

from .simulated import planted_cohort


def _candidates(planted):
    return [Candidate(r.gen_id, r.parent_gen_id, f"{r.template_id}/{r.llm_model_id}", r.replicate)
            for r in planted.membership.evaluations]


def test_first_round_rotates_evaluators_evenly_and_connects_them():
    planted = planted_cohort(essays=40, evaluators=8)
    picks = first_round(_candidates(planted), first=2, seed=3)
    by_id = {c.gen_id: c for c in _candidates(planted)}
    per_essay = Counter(by_id[p.gen_id].essay_gen_id for p in picks)
    assert set(per_essay.values()) == {2} and len(per_essay) == 40
    per_evaluator = Counter(by_id[p.gen_id].evaluator for p in picks)
    assert max(per_evaluator.values()) - min(per_evaluator.values()) <= 1
    # Two evaluators of one essay are distinct, and consecutive essays share none or one:
    pairs = {}
    for p in picks:
        pairs.setdefault(by_id[p.gen_id].essay_gen_id, set()).add(by_id[p.gen_id].evaluator)
    assert all(len(v) == 2 for v in pairs.values())
    assert first_round(_candidates(planted), first=2, seed=3) == picks
    assert first_round(_candidates(planted), first=2, seed=4) != picks


def test_stopping_value_counts_unknown_essays_as_undecided():
    assert stopping_value(np.array([0.99, 0.01, np.nan])) == 0.5
    assert stopping_value(np.array([0.97, 0.02])) == 0.97


def _simulate(planted, rule, paid: Counter):
    """Run rounds to the end: each pending chosen evaluation is 'called' once (counted in paid)."""
    scores: dict[str, float] = {}
    rows = {r.gen_id: r for r in planted.membership.evaluations}

    def outcome(gen_id):
        if gen_id in rows:
            return scores.get(gen_id, "pending")
        return 0.0

    while True:
        selection = select(planted.membership, outcome, adaptive=rule, gate=None)
        pending = [g for g in selection.round_of if g not in scores]
        if not pending:
            return selection, scores
        for gen_id in pending:
            paid[gen_id] += 1
            scores[gen_id] = planted.score(rows[gen_id])


def test_rounds_concentrate_on_the_boundary_and_find_the_top_set():
    planted = planted_cohort(essays=80, evaluators=8, noise=0.8)
    rule = AdaptiveEvaluation(top=5, confidence=0.9, first=2, batch=24, seed=0)
    paid: Counter[str] = Counter()
    selection, scores = _simulate(planted, rule, paid)
    progress = selection.adaptive
    assert progress is not None and progress.ended in ("goal met", "design exhausted")
    assert len(progress.rounds) >= 2
    assert set(paid.values()) == {1}  # nothing paid twice
    assert progress.chosen == len(scores) < 0.6 * len(planted.membership.evaluations)
    per_essay = Counter(g.split("_")[1] for g in scores)
    top = {e.split("_")[1] for e in planted.true_top(5)}
    # The true top essays got more evaluations than the typical essay.
    assert np.mean([per_essay[e] for e in top]) > np.mean(list(per_essay.values()))
    # Unchosen evaluations are recorded as unselected once the rule has ended.
    assert {h.state for h in selection.withheld.values()} == {"unselected"}


def test_replay_after_a_kill_reproduces_the_rounds_and_pays_nothing_again():
    planted = planted_cohort(essays=50, evaluators=6, noise=0.8)
    rule = AdaptiveEvaluation(top=3, confidence=0.9, first=2, batch=16, seed=5)
    paid: Counter[str] = Counter()
    full, scores = _simulate(planted, rule, paid)
    # A run killed after round 2: only rounds 1-2 are on disk; a re-run replays to the same end.
    first_two = {g for g, r in full.round_of.items() if r <= 2}
    kept = {g: s for g, s in scores.items() if g in first_two}
    rows = {r.gen_id: r for r in planted.membership.evaluations}
    repaid: Counter[str] = Counter()
    while True:
        selection = select(planted.membership, lambda g: kept.get(g, "pending") if g in rows else 0.0,
                           adaptive=rule, gate=None)
        pending = [g for g in selection.round_of if g not in kept]
        if not pending:
            break
        for gen_id in pending:
            repaid[gen_id] += 1
            kept[gen_id] = planted.score(rows[gen_id])
    assert selection.round_of == full.round_of
    assert [r.picks for r in selection.adaptive.rounds] == [r.picks for r in full.adaptive.rounds]
    assert not set(repaid) & first_two


def test_next_round_prefers_unseen_evaluators_and_only_undecided_essays():
    planted = planted_cohort(essays=30, evaluators=4, noise=0.5)
    candidates = _candidates(planted)
    picks = first_round(candidates, first=2, seed=0)
    by_id = {c.gen_id: c for c in candidates}
    import polars as pl

    table = pl.DataFrame([(by_id[p.gen_id].essay_gen_id, by_id[p.gen_id].evaluator,
                           planted.score(next(r for r in planted.membership.evaluations if r.gen_id == p.gen_id)))
                          for p in picks], schema=["essay_gen_id", "evaluator", "score"], orient="row")
    fit = analysis_fit(table)
    choice = next_round(candidates, [p.gen_id for p in picks], fit, top=3, confidence=0.95, batch=10, seed=0)
    assert len(choice.picks) == 10 and choice.ended is None
    p = dict(zip(fit.essay_ids, fit.top_k_probabilities(3, seed=0), strict=True))
    seen = {(by_id[q.gen_id].essay_gen_id, by_id[q.gen_id].evaluator) for q in picks}
    for pick in choice.picks:
        candidate = by_id[pick.gen_id]
        assert max(p[candidate.essay_gen_id], 1 - p[candidate.essay_gen_id]) < 0.95
        assert (candidate.essay_gen_id, candidate.evaluator) not in seen
        assert "not yet seen" in pick.reason
    again = next_round(candidates, [p.gen_id for p in picks], fit, top=3, confidence=0.95, batch=10, seed=0)
    assert again == choice
