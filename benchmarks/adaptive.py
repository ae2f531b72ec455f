"""Benchmark: adaptive evaluation and the essay gate against the full design (issue #21).

A simulated cohort with a mock judge whose truth is planted: every essay has a quality, every
evaluator (8 of them: 4 templates × 2 models) an offset, each score is quality + offset + noise,
rounded to the 0-10 scale's half points. For several seeds it runs

- the **full design** (every essay × every evaluator), and
- the **adaptive run**: the same replay ``daydream run`` uses
  (:func:`daydreaming_dagster.adaptive.select`) with the analysis layer's essay model, the mock
  judge answering each evaluation a round chooses,

and reports for each: evaluation calls, top-5 recall against the planted truth (the share of
the true top 5 among the 5 highest estimated means) and the coverage of the 95% intervals of
the essay means (over all essays, and over the 20 essays with the highest estimates, where
adaptive allocation concentrates its choices).

The **gate example** (``gates.essay`` of docs/adaptive.md) simulates drafts with a planted
quality, a copy essay screened by one evaluation, and ``keep: {top: 25%, per: draft_template}``:
it reports the expensive essay calls against the full design and whether the drafts of the true
top-5 essays were kept.

Target: adaptive top-5 recall within 0.05 of the full design's with at most 40% of its calls;
the gate cuts essay calls to the kept share and keeps the true top-5 drafts.

    uv run python benchmarks/adaptive.py [--essays 200] [--seeds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from daydreaming_dagster.adaptive import analysis_fit, decide_gate, select
from daydreaming_dagster.cohorts.membership import Membership, MembershipRow
from daydreaming_dagster.cohorts.spending import AdaptiveEvaluation, EssayGate

TEMPLATES = ("eval-a", "eval-b", "eval-c", "eval-d")
JUDGES = ("judge-1", "judge-2")
TOP = 5


@dataclass(frozen=True)
class Cohort:
    membership: Membership
    quality: np.ndarray
    offsets: dict[str, float]
    scores: dict[str, float]
    """Evaluation id -> the score the mock judge gives when called."""
    essay_of: dict[str, str]
    evaluator_of: dict[str, str]

    @property
    def essay_ids(self) -> list[str]:
        return [r.gen_id for r in self.membership.essays]

    def truth(self) -> dict[str, float]:
        """The essay means the model estimates: quality plus the panel's average offset."""
        panel = float(np.mean(list(self.offsets.values())))
        return {e: float(q) + panel for e, q in zip(self.essay_ids, self.quality, strict=True)}


def simulated_cohort(essays: int, seed: int, *, quality_sd: float, offset_sd: float, noise_sd: float) -> Cohort:
    rng = np.random.default_rng(seed)
    drafts = tuple(MembershipRow("draft", f"d_{i:05d}", None, "links", "m", f"c{i}", 1, "llm") for i in range(essays))
    essay_rows = tuple(MembershipRow("essay", f"e_{i:05d}", f"d_{i:05d}", "expand", "m", f"c{i}", 1, "llm")
                       for i in range(essays))
    evaluators = [(t, j) for t in TEMPLATES for j in JUDGES]
    rows = tuple(MembershipRow("evaluation", f"v_{i:05d}_{t}_{j}", f"e_{i:05d}", t, j, f"c{i}", 1, "llm")
                 for i in range(essays) for t, j in evaluators)
    quality = 5.0 + rng.normal(0, quality_sd, essays)
    offsets = {f"{t}/{j}": float(o) for (t, j), o in zip(evaluators, rng.normal(0, offset_sd, len(evaluators)), strict=True)}
    scores = {}
    for row, noise in zip(rows, rng.normal(0, noise_sd, len(rows)), strict=True):
        index = int(row.parent_gen_id[2:])
        raw = quality[index] + offsets[f"{row.template_id}/{row.llm_model_id}"] + noise
        scores[row.gen_id] = float(min(10.0, max(0.0, round(raw * 2) / 2)))
    return Cohort(Membership(drafts, essay_rows, rows), quality, offsets, scores,
                  {r.gen_id: r.parent_gen_id or "" for r in rows},
                  {r.gen_id: f"{r.template_id}/{r.llm_model_id}" for r in rows})


def _table(cohort: Cohort, gen_ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"essay_gen_id": [cohort.essay_of[g] for g in gen_ids],
                         "evaluator": [cohort.evaluator_of[g] for g in gen_ids],
                         "score": [cohort.scores[g] for g in gen_ids]})


def _judge(cohort: Cohort, gen_ids: list[str]) -> dict[str, float]:
    fit = analysis_fit(_table(cohort, gen_ids)).fit  # type: ignore[attr-defined]
    truth = cohort.truth()
    true_values = np.array([truth[e] for e in fit.essay_ids])
    estimated_top = {fit.essay_ids[i] for i in np.argsort(-fit.means, kind="stable")[:TOP]}
    true_top = set(sorted(truth, key=lambda e: -truth[e])[:TOP])
    covered = (fit.ci_low <= true_values) & (true_values <= fit.ci_high)
    leaders = np.argsort(-fit.means, kind="stable")[:20]
    return {"calls": len(gen_ids), "top5_recall": len(estimated_top & true_top) / TOP,
            "coverage": float(np.mean(covered)), "coverage_top20": float(np.mean(covered[leaders])),
            "essays_estimated": len(fit.essay_ids)}


def adaptive_run(cohort: Cohort, rule: AdaptiveEvaluation) -> tuple[list[str], int, str | None]:
    """Rounds until the rule ends, the mock judge answering every evaluation a round adds."""
    answered: dict[str, float] = {}
    evaluations = set(cohort.scores)

    def outcome(gen_id: str) -> float | str:
        if gen_id not in evaluations:
            return 0.0  # drafts and essays exist
        return answered.get(gen_id, "pending")

    while True:
        selection = select(cohort.membership, outcome, adaptive=rule, gate=None)
        pending = [g for g in selection.round_of if g not in answered]
        if not pending:
            assert selection.adaptive is not None
            return list(selection.round_of), len(selection.adaptive.rounds), selection.adaptive.ended
        for gen_id in pending:
            answered[gen_id] = cohort.scores[gen_id]


def gate_example(drafts: int, seed: int, *, noise_sd: float) -> dict[str, float]:
    """Drafts of 2 templates, each with a copy essay (screened by one evaluation) and an
    expensive essay whose quality follows the draft's."""
    rng = np.random.default_rng(seed)
    draft_rows = tuple(MembershipRow("draft", f"d_{i:05d}", None, ("links", "notes")[i % 2], "m", f"c{i}", 1, "llm")
                       for i in range(drafts))
    copies = tuple(MembershipRow("essay", f"ec_{i:05d}", f"d_{i:05d}", "essay-copy", None, f"c{i}", 1, "copy")
                   for i in range(drafts))
    expands = tuple(MembershipRow("essay", f"ex_{i:05d}", f"d_{i:05d}", "essay-expand", "m", f"c{i}", 1, "llm")
                    for i in range(drafts))
    screens = tuple(MembershipRow("evaluation", f"v_{i:05d}", f"ec_{i:05d}", "eval-overall", "gpt-4o-mini", f"c{i}", 1,
                                  "llm") for i in range(drafts))
    membership = Membership(draft_rows, copies + expands, screens)
    draft_quality = rng.normal(0, 1, drafts)
    essay_quality = draft_quality + rng.normal(0, 0.3, drafts)
    screen_score = {f"v_{i:05d}": float(draft_quality[i] + rng.normal(0, noise_sd)) for i in range(drafts)}
    gate = EssayGate(("essay-expand",), "essay-copy", ("eval-overall",), ("gpt-4o-mini",), 0.25, None,
                     ("draft_template",))
    decisions = decide_gate(gate, membership, lambda g: screen_score[g], seed)
    assert decisions is not None
    kept = {d.draft_gen_id for d in decisions if d.passed}
    true_top = {f"d_{i:05d}" for i in np.argsort(-essay_quality)[:TOP]}
    return {"essay_calls_full": drafts, "essay_calls_gated": len(kept), "kept_share": len(kept) / drafts,
            "true_top5_drafts_kept": len(true_top & kept) / TOP}


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return round(float(np.mean([r[key] for r in rows])), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--essays", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--first", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quality-sd", type=float, default=1.0)
    parser.add_argument("--offset-sd", type=float, default=0.5)
    parser.add_argument("--noise-sd", type=float, default=1.0)
    parser.add_argument("--screen-noise-sd", type=float, default=0.4,
                        help="gate example: noise of the screen score around the draft's quality (sd 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rule = AdaptiveEvaluation(top=TOP, confidence=args.confidence, first=args.first, batch=args.batch, seed=0)
    started = time.perf_counter()
    full_rows, adaptive_rows, gate_rows = [], [], []
    for seed in range(args.seeds):
        cohort = simulated_cohort(args.essays, seed, quality_sd=args.quality_sd, offset_sd=args.offset_sd,
                                  noise_sd=args.noise_sd)
        full_rows.append(_judge(cohort, list(cohort.scores)))
        chosen, rounds, ended = adaptive_run(cohort, rule)
        adaptive = _judge(cohort, chosen)
        adaptive.update({"rounds": rounds, "goal_met": float(ended == "goal met")})
        adaptive_rows.append(adaptive)
        gate_rows.append(gate_example(args.essays, seed, noise_sd=args.screen_noise_sd))
    design = args.essays * len(TEMPLATES) * len(JUDGES)
    full = {k: _mean(full_rows, k) for k in ("calls", "top5_recall", "coverage", "coverage_top20")}
    adaptive = {k: _mean(adaptive_rows, k) for k in ("calls", "top5_recall", "coverage", "coverage_top20", "rounds",
                                                     "goal_met")}
    adaptive["call_share"] = round(adaptive["calls"] / design, 4)
    gate = {k: _mean(gate_rows, k) for k in gate_rows[0]}
    result = {
        "design": {"essays": args.essays, "evaluations_per_essay": len(TEMPLATES) * len(JUDGES), "seeds": args.seeds,
                   "quality_sd": args.quality_sd, "offset_sd": args.offset_sd, "noise_sd": args.noise_sd,
                   "gate_screen_noise_sd": args.screen_noise_sd},
        "rule": {"top": rule.top, "confidence": rule.confidence, "first": rule.first, "batch": rule.batch},
        "full_design": full,
        "adaptive": adaptive,
        "gate": gate,
        "targets": {
            "recall_within_0.05": adaptive["top5_recall"] >= full["top5_recall"] - 0.05,
            "calls_at_most_40pct": adaptive["call_share"] <= 0.40,
            "gate_calls_at_kept_share": math.isclose(gate["kept_share"], 0.25, abs_tol=0.01),
            "gate_keeps_true_top5": gate["true_top5_drafts_kept"] == 1.0,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.seeds} simulated cohorts of {args.essays} essays x {len(TEMPLATES) * len(JUDGES)} evaluations")
    for name, row in (("full design", full), ("adaptive", adaptive)):
        print(f"  {name:<12} calls {row['calls']:>7.1f}  top-5 recall {row['top5_recall']:.3f}  "
              f"coverage {row['coverage']:.3f} (top 20: {row['coverage_top20']:.3f})")
    print(f"  adaptive: {adaptive['call_share']:.1%} of the calls, {adaptive['rounds']:.1f} rounds, "
          f"goal met in {adaptive['goal_met']:.0%} of runs")
    print(f"  gate: essay calls {gate['essay_calls_gated']:.0f} of {gate['essay_calls_full']:.0f} "
          f"(kept share {gate['kept_share']:.2f}); true top-5 drafts kept {gate['true_top5_drafts_kept']:.2f}")
    print(f"  targets: {result['targets']}  ({result['seconds']} s)")


if __name__ == "__main__":
    main()
