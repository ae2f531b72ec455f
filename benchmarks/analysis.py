"""Benchmark: analyse 100,000 simulated scores with 1,000 bootstrap resamples (issue #12).

Target: under 60 s on the 2-core reference machine. Prints the time of each part and the
machine load, so a figure can be judged against how busy the machine was.

    uv run python benchmarks/analysis.py [--scores 100000] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import polars as pl

from daydreaming_dagster.analysis import analyze_scores, prepare_scores


def simulated_table(n_scores: int, seed: int = 0) -> pl.DataFrame:
    """Essays over 50 combos × 4 draft templates × 3 draft models × 2 essay templates, each
    scored by 20 evaluators (5 templates × 4 models) once: n_scores / 20 essays."""
    rng = np.random.default_rng(seed)
    evaluators = 20
    n_essays = n_scores // evaluators
    combo = rng.integers(0, 50, n_essays)
    draft_template = rng.integers(0, 4, n_essays)
    draft_llm = rng.integers(0, 3, n_essays)
    essay_template = rng.integers(0, 2, n_essays)
    essay_mu = 5 + 0.8 * draft_template - 0.3 * essay_template + rng.normal(0, 0.7, n_essays)
    bias = rng.normal(0, 0.5, evaluators)
    e = np.repeat(np.arange(n_essays), evaluators)
    j = np.tile(np.arange(evaluators), n_essays)
    score = np.clip(np.round(essay_mu[e] + bias[j] + rng.normal(0, 1, e.size)), 0, 10)
    return pl.DataFrame({
        "essay_gen_id": [f"e{i:06d}" for i in e],
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
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    table = simulated_table(args.scores)
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
    print(f"load average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    top = analysis.top_factor
    print(f"alpha {analysis.alpha:.3f}, top factor {top.component if top else None} ({(top.share or 0):.2f})")


if __name__ == "__main__":
    main()
