"""Benchmark: analyse 100,000 simulated scores with 1,000 bootstrap resamples (issue #12).

Target: under 60 s on the 2-core reference machine. Prints the time of each part and the
machine load, so a figure can be judged against how busy the machine was.

    uv run python benchmarks/analysis.py [--scores 100000] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import polars as pl

from daydreaming_dagster.analysis import analyze_scores, prepare_scores


def simulated_table(n_scores: int, seed: int = 0, evaluators: int = 20) -> pl.DataFrame:
    """Drafts over 50 combos × 4 draft templates × 3 draft models, each expanded by 2 essay
    templates (essays nested in drafts, with a random draft effect), every essay scored by
    ``evaluators`` evaluators (templates × models) once: n_scores / evaluators essays."""
    rng = np.random.default_rng(seed)
    n_essays = n_scores // evaluators
    n_drafts = (n_essays + 1) // 2
    draft = np.arange(n_essays) // 2
    combo = rng.integers(0, 50, n_drafts)[draft]
    draft_template = rng.integers(0, 4, n_drafts)[draft]
    draft_llm = rng.integers(0, 3, n_drafts)[draft]
    essay_template = np.arange(n_essays) % 2
    draft_effect = rng.normal(0, 0.5, n_drafts)[draft]
    essay_mu = 5 + 0.8 * draft_template - 0.3 * essay_template + draft_effect + rng.normal(0, 0.5, n_essays)
    bias = rng.normal(0, 0.5, evaluators)
    e = np.repeat(np.arange(n_essays), evaluators)
    j = np.tile(np.arange(evaluators), n_essays)
    score = np.clip(np.round(essay_mu[e] + bias[j] + rng.normal(0, 1, e.size)), 0, 10)
    return pl.DataFrame({
        "essay_gen_id": [f"e{i:06d}" for i in e],
        "draft_gen_id": [f"d{i:06d}" for i in draft[e]],
        "evaluator": [f"t{k % 5}/m{k // 5}" for k in j],
        "score": score,
        "scale": "0-10",
        "combo_id": [f"c{c}" for c in combo[e]],
        "draft_template": [f"d{d}" for d in draft_template[e]],
        "draft_llm": [f"m{d}" for d in draft_llm[e]],
        "essay_template": [f"x{d}" for d in essay_template[e]],
        "evaluation_template": [f"t{k % 5}" for k in j],
        "evaluation_llm": [f"m{k // 5}" for k in j],
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=int, default=100_000)
    parser.add_argument("--bootstrap", type=int, default=1_000)
    parser.add_argument("--evaluators", type=int, default=20,
                        help="Scores per essay (e.g. 2 with --scores 200000 gives 100,000 essays, the memory case).")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    table = simulated_table(args.scores, evaluators=args.evaluators)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    prepared = prepare_scores(table)
    prepared_at = time.perf_counter()
    analysis = analyze_scores(prepared, n_boot=args.bootstrap, seed=0)
    done = time.perf_counter()
    print(f"scores: {analysis.n_scores}, essays: {analysis.n_essays}, evaluators: {len(analysis.evaluators)}, "
          f"bootstrap resamples: {args.bootstrap}")
    print(f"validate + index: {prepared_at - start:.2f} s")
    print(f"analysis: {done - prepared_at:.2f} s")
    print(f"total: {done - start:.2f} s (target < 60 s)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB (after building the table: {rss_before:.0f} MB)")
    print(f"load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    top = analysis.top_factor
    print(f"alpha {analysis.alpha:.3f}, top factor {top.component if top else None} ({(top.share or 0):.2f})")


if __name__ == "__main__":
    main()
