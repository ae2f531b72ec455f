"""Simulated cohorts with the real design (nesting, evaluator offsets, missing scores, humans,
many null levels) through ``analyze_scores``: coverage and false-positive figures (issue 19).

    uv run python benchmarks/analysis_validity.py [--cohorts 200] [--json]

The test suite runs smaller versions of the same checks with fixed seeds
(tests/analysis/test_design_validity.py); this script prints the figures quoted in
docs/analysis.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "analysis"))
from simulate_design import simulate_cohort  # noqa: E402

from daydreaming_dagster.analysis import analyze_scores  # noqa: E402

N_BOOT = 200


def nesting(cohorts: int) -> dict[str, float]:
    """Random draft effect, 2 drafts per combination × template cell, 2 essays per draft."""
    covered, supported = [], []
    for seed in range(cohorts):
        cohort = simulate_cohort(seed, combos=4, drafts_per_cell=2, draft_sd=1.0, essay_sd=0.2, noise_sd=0.5)
        analysis = analyze_scores(cohort.table, seed=seed, n_boot=N_BOOT, top_k=(1,))
        for level in analysis.levels:
            if level.factor == "draft_template" and level.ci_low is not None:
                covered.append(level.ci_low <= cohort.level_means[("draft_template", level.level)] <= level.ci_high)
        supported.append(any(d.excludes_zero for d in analysis.differences if d.factor == "draft_template"))
    return {"draft_template_coverage": float(np.mean(covered)), "null_difference_supported": float(np.mean(supported))}


def multiplicity(cohorts: int) -> dict[str, float]:
    """Ten null combination levels: share of cohorts with any combination difference excluding 0."""
    any_supported = []
    for seed in range(cohorts):
        cohort = simulate_cohort(1000 + seed, combos=10, combo_sd=0.0, drafts_per_cell=2, draft_sd=0.5,
                                 draft_effects={"d1": 0.0})
        analysis = analyze_scores(cohort.table, seed=seed, n_boot=N_BOOT, top_k=(1,))
        any_supported.append(any(d.excludes_zero for d in analysis.differences if d.factor == "combo_id"))
    return {"familywise_false_positive_combo": float(np.mean(any_supported))}


def offsets(cohorts: int) -> dict[str, float]:
    """Crossed evaluators with large offsets, half the scores missing at random, one planted
    best essay (+3): how often it is ranked first, its mean P(first); and with the harshest
    evaluator failing on 40% of essays, the rank correlation of essay means with the truth."""
    first, p_first, widths, harsh_corr = [], [], [], []
    for seed in range(cohorts):
        cohort = simulate_cohort(2000 + seed, combos=3, drafts_per_cell=2, draft_sd=0.5, essay_sd=0.5,
                                 offsets=(-3.0, -1.0, 1.0, 3.0), noise_sd=0.3, missing=0.5)
        best = "e00001"
        table = cohort.table.with_columns(
            (cohort.table["score"] + (cohort.table["essay_gen_id"] == best).cast(float) * 3.0).alias("score"))
        analysis = analyze_scores(table, seed=seed, n_boot=N_BOOT, top_k=(1,))
        first.append(analysis.essays[0].essay_gen_id == best)
        p_first.append(next(e.p_top[1] for e in analysis.essays if e.essay_gen_id == best) or 0.0)
        widths.append(float(np.nanmean([(e.ci_high or np.nan) - (e.ci_low or np.nan) for e in analysis.essays])))
        harsh = simulate_cohort(3000 + seed, combos=3, drafts_per_cell=2, draft_sd=0.5, essay_sd=0.5,
                                offsets=(-3.0, -1.0, 1.0, 3.0), noise_sd=0.3, harsh_missing=0.4)
        got = analyze_scores(harsh.table, seed=seed, n_boot=N_BOOT, top_k=(1,))
        est = np.array([e.mean for e in got.essays])
        truth = np.array([harsh.essay_means[e.essay_gen_id] for e in got.essays])
        harsh_corr.append(float(np.corrcoef(np.argsort(np.argsort(est)), np.argsort(np.argsort(truth)))[0, 1]))
    return {"planted_best_ranked_first": float(np.mean(first)), "planted_best_p_first": float(np.mean(p_first)),
            "mean_essay_ci_width": float(np.mean(widths)), "harsh_missing_rank_corr": float(np.mean(harsh_corr))}


def humans(cohorts: int) -> dict[str, float]:
    """Two human raters on 0-1 beside LLM judges on 0-10: does the LLM output change?"""
    changed, scale_changed = [], []
    for seed in range(cohorts):
        cohort = simulate_cohort(4000 + seed, combos=3, humans=2, human_scale="0-1")
        llm_only = cohort.table.filter(~cohort.table["evaluator"].str.starts_with("human/"))
        with_h = analyze_scores(cohort.table, seed=seed, n_boot=N_BOOT, top_k=(1,))
        without = analyze_scores(llm_only, seed=seed, n_boot=N_BOOT, top_k=(1,))
        changed.append(with_h.essays[0].mean != without.essays[0].mean)
        scale_changed.append(with_h.scale != without.scale)
    return {"humans_change_llm_means": float(np.mean(changed)), "humans_change_scale": float(np.mean(scale_changed))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    figures: dict[str, float] = {}
    for part in (nesting, multiplicity, offsets, humans):
        figures |= part(args.cohorts)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:36s} {value:.3f}")


if __name__ == "__main__":
    main()
