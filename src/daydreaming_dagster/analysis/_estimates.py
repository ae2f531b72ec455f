"""Means with confidence intervals: per essay, per factor level, differences between levels,
and each essay's probability of being in the top k.

Resampling schemes (all vectorised with numpy; deterministic for a seed):

- *cluster bootstrap over essays* (levels, differences, agreement, variance shares): a
  resample draws ``n_essays`` essays with replacement and keeps all scores of each drawn essay,
  because scores of one essay are not independent. One weight matrix ``W`` (resample × essay,
  multinomial counts) serves every statistic that is linear in per-essay sums.
- *draws from the fitted essay-mean model* (ranking): every essay's mean is perturbed by an
  error drawn with the pooled within-essay spread (the model of the essay CIs), so every
  essay is ranked in every draw, including essays with a single score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import stdtrit  # t quantile; scipy.stats would add ~2 s of import time

from ._table import PreparedScores

__all__ = [
    "CONFIDENCE",
    "cluster_weights",
    "essay_estimates",
    "level_estimates",
    "top_k_probabilities",
]

CONFIDENCE = 0.95
_TAIL = (1 - CONFIDENCE) / 2 * 100
_CHUNK_CELLS = 4_000_000  # resamples x rows per chunk of the ranking bootstrap (~32 MB of floats)
MAX_ALL_PAIRS = 12
"""A factor with more levels than this compares each level with the best one only."""


def percentile_ci(draws: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5th and 97.5th percentiles of ``draws`` along ``axis``, ignoring NaN."""
    import warnings

    if draws.size == 0:
        shape = draws.shape[1:] if axis == 0 else draws.shape[:axis] + draws.shape[axis + 1:]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, by design
        low, high = np.nanpercentile(draws, [_TAIL, 100 - _TAIL], axis=axis)
    return low, high


def cluster_weights(n_essays: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot × n_essays`` multinomial counts: how often each essay is drawn per resample."""
    return rng.multinomial(n_essays, np.full(n_essays, 1.0 / n_essays), size=n_boot).astype(np.float64)


@dataclass(frozen=True)
class EssayEstimates:
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: np.ndarray
    pooled_sd: float
    """Within-essay standard deviation pooled over essays (NaN when no essay has two scores)."""
    df: int
    """Degrees of freedom of ``pooled_sd``: scores minus essays."""


def essay_estimates(scores: PreparedScores) -> EssayEstimates:
    """Each essay's mean score with a t interval that uses the within-essay standard deviation
    pooled over all essays (NaN when no essay has two scores).

    Model: an essay's scores are exchangeable draws of "one evaluation of this essay" (an
    evaluator as the design assigns them, plus replicate noise) with a spread shared by all
    essays. Pooling makes the interval usable with two or three scores per essay, where an
    essay's own standard deviation is too unstable. When every essay sees the same evaluators
    the interval is conservative (the evaluator mix is fixed, not sampled).
    """
    e, y, k = scores.essay_index, scores.y, scores.n_essays
    n = np.bincount(e, minlength=k).astype(np.float64)
    mean = np.bincount(e, weights=y, minlength=k) / n
    ss = np.bincount(e, weights=(y - mean[e]) ** 2, minlength=k)
    df = y.size - k
    if df >= 1:
        pooled = float(np.sqrt(ss.sum() / df))
        half = stdtrit(df, 1 - (1 - CONFIDENCE) / 2) * pooled / np.sqrt(n)
    else:
        pooled, half = float("nan"), np.full(k, np.nan)
    return EssayEstimates(mean, mean - half, mean + half, n.astype(np.int64), pooled, df)


@dataclass(frozen=True)
class LevelEstimates:
    """Per factor level: point estimate and bootstrap draws (for CIs and differences)."""

    factor: list[str]
    level: list[str]
    mean: np.ndarray
    n: np.ndarray
    n_essays: np.ndarray
    draws: np.ndarray
    """``n_boot × groups`` resampled means (NaN when a resample holds no essay of the level)."""


def level_estimates(scores: PreparedScores, weights: np.ndarray) -> LevelEstimates:
    """Mean score of every level of every factor, with cluster-bootstrap draws.

    A level's mean is the mean of all scores in it (essay-level factor: scores of its
    essays; evaluator-level factor: scores given by its evaluators).
    """
    factors: list[str] = []
    levels: list[str] = []
    group_of_row: list[np.ndarray] = []
    for factor in (*scores.essay_factors, *scores.evaluator_factors):
        values = scores.frame[factor].to_numpy()
        names, codes = np.unique(values.astype(str), return_inverse=True)
        group_of_row.append(codes + len(levels))
        factors += [factor] * len(names)
        levels += [str(n) for n in names]
    if not levels:
        empty = np.zeros(0)
        return LevelEstimates([], [], empty, empty.astype(np.int64), empty.astype(np.int64), np.zeros((weights.shape[0], 0)))
    g = len(levels)
    rows = np.tile(np.arange(scores.n_scores), len(group_of_row))
    cols = np.concatenate(group_of_row)
    essays = scores.essay_index[rows]
    sums = sparse.csr_matrix((scores.y[rows], (essays, cols)), shape=(scores.n_essays, g))
    counts = sparse.csr_matrix((np.ones(rows.size), (essays, cols)), shape=(scores.n_essays, g))
    total_sum = np.asarray(sums.sum(axis=0)).ravel()
    total_n = np.asarray(counts.sum(axis=0)).ravel()
    n_essays = np.asarray((counts > 0).sum(axis=0)).ravel()
    boot_sum = np.asarray((sums.T @ weights.T).T)
    boot_n = np.asarray((counts.T @ weights.T).T)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = boot_sum / boot_n
    return LevelEstimates(factors, levels, total_sum / total_n, total_n.astype(np.int64), n_essays.astype(np.int64), draws)


def level_pairs(estimates: LevelEstimates) -> list[tuple[int, int]]:
    """Index pairs (a, b) to compare within each factor: every pair when the factor has at most
    :data:`MAX_ALL_PAIRS` levels, else every level against the best one."""
    pairs: list[tuple[int, int]] = []
    for factor in dict.fromkeys(estimates.factor):
        idx = [i for i, f in enumerate(estimates.factor) if f == factor]
        idx.sort(key=lambda i: (-estimates.mean[i], estimates.level[i]))
        if len(idx) <= MAX_ALL_PAIRS:
            pairs += [(a, b) for pos, a in enumerate(idx) for b in idx[pos + 1:]]
        else:
            pairs += [(idx[0], b) for b in idx[1:]]
    return pairs


def top_k_probabilities(
    essay: EssayEstimates, ks: tuple[int, ...], n_boot: int, rng: np.random.Generator
) -> dict[int, np.ndarray] | None:
    """``k → P(essay in the top k)`` per essay, drawn from the fitted essay-mean model.

    The model is the one behind :func:`essay_estimates`: an essay's mean score is its true
    mean plus error with standard deviation ``pooled_sd / sqrt(n)`` (t distributed with the
    pooled degrees of freedom). Each draw perturbs every essay's mean by its own error and ranks
    the draws, so every essay is ranked in every draw, and an essay with one score gets the
    spread the other essays show (a within-essay bootstrap would give it none and call its
    rank certain). Ties at the k-th place share the remaining places equally. Returns ``None``
    when no essay has two scores (the spread of a score is then unknown).
    """
    if not np.isfinite(essay.pooled_sd):
        return None
    k_total = essay.mean.size
    scale = essay.pooled_sd / np.sqrt(essay.n.astype(np.float64))
    hits = {k: np.zeros(k_total) for k in ks}
    chunk = max(1, min(n_boot, _CHUNK_CELLS // max(1, k_total)))
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        noise = rng.standard_t(essay.df, size=(size, k_total))
        # Rounded so that equal means with no spread still tie exactly.
        means = np.round(essay.mean + noise * scale, 10)
        for k in ks:
            hits[k] += _top_k_credit(means, k).sum(axis=0)
        done += size
    return {k: hits[k] / n_boot for k in ks}


def _top_k_credit(means: np.ndarray, k: int) -> np.ndarray:
    """Per resample row: 1 for essays above the k-th best mean, a share for ties at it."""
    n = means.shape[1]
    if k >= n:
        return np.ones_like(means)
    kth = -np.partition(-means, k - 1, axis=1)[:, k - 1:k]
    above = means > kth
    tied = means == kth
    free = k - above.sum(axis=1, keepdims=True)
    return above + tied * (free / tied.sum(axis=1, keepdims=True))
