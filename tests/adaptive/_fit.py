"""A stand-in for the analysis layer's essay model while it is not on this branch (test helper
only: the shipped code uses ``daydreaming_dagster.analysis.fit_essay_model``).

Least squares of score on essay + evaluator effects (evaluator offsets sum to zero), normal
parametric draws of the essay means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class SimpleFit:
    essay_ids: tuple[str, ...]
    evaluator_ids: tuple[str, ...]
    means: np.ndarray
    se: np.ndarray
    n_scores: np.ndarray

    def draws(self, n: int, rng: np.random.Generator) -> np.ndarray:
        se = np.where(np.isnan(self.se), 10.0, self.se)
        return self.means + rng.standard_normal((n, len(self.means))) * se

    def top_k_probabilities(self, k: int, n_draws: int = 2000, seed: int = 0) -> np.ndarray:
        draws = self.draws(n_draws, np.random.default_rng(seed))
        threshold = -np.sort(-draws, axis=1)[:, k - 1:k]
        return (draws >= threshold).mean(axis=0)


def simple_fit(table: pl.DataFrame) -> SimpleFit:
    essays = tuple(sorted(set(table["essay_gen_id"].to_list())))
    evaluators = tuple(sorted(set(table["evaluator"].to_list())))
    e_index = {e: i for i, e in enumerate(essays)}
    v_index = {v: i for i, v in enumerate(evaluators)}
    n, ne, nv = table.height, len(essays), len(evaluators)
    x = np.zeros((n, ne + max(0, nv - 1)))
    for row, (essay, evaluator) in enumerate(zip(table["essay_gen_id"], table["evaluator"], strict=True)):
        x[row, e_index[essay]] = 1.0
        v = v_index[evaluator]
        if nv > 1:
            if v < nv - 1:
                x[row, ne + v] = 1.0
            else:
                x[row, ne:] = -1.0
    y = table["score"].to_numpy().astype(float)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    df = max(1, n - x.shape[1])
    sigma2 = float(np.sum((y - x @ beta) ** 2) / df) if n > x.shape[1] else 1.0
    cov = np.linalg.pinv(x.T @ x) * max(sigma2, 1e-6)
    counts = np.array([np.sum(table["essay_gen_id"].to_numpy() == e) for e in essays], dtype=float)
    return SimpleFit(essays, evaluators, beta[:ne], np.sqrt(np.diag(cov)[:ne]), counts)
