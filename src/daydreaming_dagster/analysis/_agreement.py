"""Evaluator agreement: Krippendorff's alpha (interval), pairwise Spearman, each evaluator's
correlation with the leave-one-out consensus, and self-consistency over repeated scores.

All of them work on the essay × evaluator matrix of mean scores (an evaluator's replicates of
one essay averaged; missing cells are NaN).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.special import fdtri, ndtri

from ._estimates import percentile_ci
from ._table import PreparedScores, is_human

__all__ = [
    "FLAG_BELOW",
    "HumanLlmAgreement",
    "evaluator_matrix",
    "krippendorff_alpha_interval",
]

FLAG_BELOW = 0.3
"""An evaluator whose Spearman correlation with the leave-one-out consensus is below this
(weak or negative agreement with the others) is flagged."""
MIN_PAIRS = 3
"""Fewest common essays for a Spearman correlation (below it: not computable)."""
MIN_CI_PAIRS = 5
"""Fewest common essays for an interval on a Spearman correlation (below it: too few to say)."""
_Z = float(ndtri(0.975))


def spearman_interval(rho: float | None, n: int) -> tuple[float | None, float | None]:
    """95% interval for a Spearman correlation: Fisher's z with the Bonett-Wright (2000)
    variance ``(1 + rho²/2) / (n - 3)``; ``(None, None)`` below :data:`MIN_CI_PAIRS` essays."""
    if rho is None or n < MIN_CI_PAIRS:
        return None, None
    r = float(np.clip(rho, -0.9999, 0.9999))
    half = _Z * float(np.sqrt((1 + r * r / 2) / (n - 3)))
    return float(np.tanh(np.arctanh(r) - half)), float(np.tanh(np.arctanh(r) + half))


def weak_agreement(ci_high: float | None) -> bool:
    """Flag an evaluator only when its whole interval lies below :data:`FLAG_BELOW`: a small
    cohort's wide interval is "too few to say", not evidence of a bad evaluator."""
    return ci_high is not None and ci_high < FLAG_BELOW
CONSENSUS = "consensus"
"""``llm_evaluator`` value of a human rater's row against the mean of all LLM evaluators."""


def evaluator_matrix(scores: PreparedScores) -> np.ndarray:
    """``n_essays × n_evaluators`` mean scores (NaN where an evaluator gave no score)."""
    shape = (scores.n_essays, len(scores.evaluators))
    cell = scores.essay_index * shape[1] + scores.evaluator_index
    total = np.bincount(cell, weights=scores.y, minlength=shape[0] * shape[1])
    count = np.bincount(cell, minlength=shape[0] * shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).reshape(shape)


@dataclass(frozen=True)
class _AlphaTerms:
    """Per pairable essay (two or more evaluators): the sums alpha is built from."""

    m: np.ndarray
    within: np.ndarray
    """``m_u · SS_u / (m_u - 1)``: the essay's disagreement term."""
    total: np.ndarray
    total_sq: np.ndarray
    units: np.ndarray
    """Indices of the pairable essays in the matrix."""


def _alpha_terms(matrix: np.ndarray) -> _AlphaTerms:
    present = ~np.isnan(matrix)
    m = present.sum(axis=1).astype(np.float64)
    units = np.flatnonzero(m >= 2)
    values = np.where(present, matrix, 0.0)[units]
    m = m[units]
    total = values.sum(axis=1)
    total_sq = (values**2).sum(axis=1)
    ss = total_sq - total**2 / m
    return _AlphaTerms(m, m * ss / (m - 1), total, total_sq, units)


def _alpha_from(terms: _AlphaTerms, weights: np.ndarray) -> np.ndarray:
    """Alpha for each row of ``weights`` (resample × pairable essay)."""
    n = weights @ terms.m
    within = weights @ terms.within
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample without pairable essays: NaN
        ss_total = weights @ terms.total_sq - (weights @ terms.total) ** 2 / n
        return 1.0 - (n - 1) / n * within / ss_total


def krippendorff_alpha_interval(matrix: np.ndarray) -> float | None:
    """Krippendorff's alpha with the interval metric for an essay × evaluator matrix (NaN =
    missing), ``None`` when not computable (fewer than two evaluators on any essay, or no
    variation at all).

    ``alpha = 1 - D_o / D_e``: observed disagreement between evaluators of the same essay over
    the disagreement expected between any two scores of the pairable essays.
    """
    terms = _alpha_terms(matrix)
    if terms.units.size == 0:
        return None
    value = float(_alpha_from(terms, np.ones((1, terms.units.size)))[0])
    return value if np.isfinite(value) else None


@dataclass(frozen=True)
class AlphaResult:
    alpha: float | None
    ci: tuple[float, float] | None
    n_essays: int
    """Essays scored by at least two evaluators (the ones alpha uses)."""
    reason: str | None
    """Why alpha is not computable, when it is not."""


def alpha_with_ci(matrix: np.ndarray, weights: np.ndarray | Iterable[np.ndarray]) -> AlphaResult:
    """Alpha with a cluster-bootstrap CI (``weights``: resample × essay counts, or a list of
    such chunks, so that many essays never need the whole matrix at once)."""
    if matrix.shape[1] < 2:
        return AlphaResult(None, None, 0, "not computable: only one evaluator")
    terms = _alpha_terms(matrix)
    if terms.units.size == 0:
        return AlphaResult(None, None, 0, "not computable: no essay was scored by two evaluators")
    alpha = krippendorff_alpha_interval(matrix)
    if alpha is None:
        return AlphaResult(None, None, int(terms.units.size), "not computable: every score is the same")
    chunks = [weights] if isinstance(weights, np.ndarray) else weights
    draws = np.concatenate([_alpha_from(terms, w[:, terms.units]) for w in chunks])
    low, high = percentile_ci(draws[np.isfinite(draws)])
    return AlphaResult(alpha, (float(low), float(high)), int(terms.units.size), None)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with tied values sharing their mean rank (as Spearman's rho needs)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return ((upper - counts + 1 + upper) / 2.0)[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> tuple[float | None, int]:
    """Spearman correlation over the positions where both are present, and that count
    (``None`` below :data:`MIN_PAIRS` or when either side is constant)."""
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    if n < MIN_PAIRS or np.ptp(a[both]) == 0 or np.ptp(b[both]) == 0:
        return None, n
    # Pearson correlation of average ranks (equal to scipy.stats.spearmanr, without its import cost).
    return float(np.corrcoef(average_ranks(a[both]), average_ranks(b[both]))[0, 1]), n


@dataclass(frozen=True)
class PairwiseAgreement:
    a: str
    b: str
    spearman: float | None
    n: int
    """Essays both evaluators scored."""
    ci_low: float | None = None
    ci_high: float | None = None


def pairwise_spearman(matrix: np.ndarray, evaluators: tuple[str, ...]) -> list[PairwiseAgreement]:
    """Spearman correlation of every evaluator pair over the essays both scored."""
    out = []
    for i in range(len(evaluators)):
        for j in range(i + 1, len(evaluators)):
            rho, n = spearman(matrix[:, i], matrix[:, j])
            out.append(PairwiseAgreement(evaluators[i], evaluators[j], rho, n, *spearman_interval(rho, n)))
    return out


def consensus_correlations(matrix: np.ndarray) -> list[tuple[float | None, int]]:
    """Per evaluator: Spearman with the mean of all *other* evaluators per essay, and n."""
    present = ~np.isnan(matrix)
    total = np.where(present, matrix, 0.0).sum(axis=1)
    count = present.sum(axis=1)
    out = []
    for j in range(matrix.shape[1]):
        own = matrix[:, j]
        others = count - present[:, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            consensus = np.where(others > 0, (total - np.where(present[:, j], own, 0.0)) / others, np.nan)
        out.append(spearman(own, consensus))
    return out


@dataclass(frozen=True)
class SelfConsistency:
    n_repeated: int
    """Essays this evaluator scored more than once."""
    replicate_sd: float | None
    """Pooled standard deviation of its repeated scores of the same essay."""
    icc: float | None
    """One-way intraclass correlation ICC(1) over those essays: the share of this evaluator's
    score variance that is between essays rather than between its repeats (1 = perfectly
    repeatable)."""
    icc_ci: tuple[float, float] | None = None
    """Exact F-based 95% interval of ICC(1) under normality (Shrout & Fleiss 1979)."""


def self_consistency(scores: PreparedScores) -> list[SelfConsistency]:
    """:class:`SelfConsistency` for each evaluator (``None`` fields without repeats)."""
    out = []
    for j in range(len(scores.evaluators)):
        mask = scores.evaluator_index == j
        essays, y = scores.essay_index[mask], scores.y[mask]
        _, codes, counts = np.unique(essays, return_inverse=True, return_counts=True)
        repeated = counts[codes] >= 2
        groups, yr = codes[repeated], y[repeated]
        if yr.size == 0:
            out.append(SelfConsistency(0, None, None))
            continue
        _, g, n_i = np.unique(groups, return_inverse=True, return_counts=True)
        k, n = n_i.size, yr.size
        means = np.bincount(g, weights=yr) / n_i
        ssw = float(((yr - means[g]) ** 2).sum())
        msw = ssw / (n - k)
        sd = float(np.sqrt(msw))
        icc, icc_ci = None, None
        if k >= 2:
            msb = float((n_i * (means - yr.mean()) ** 2).sum()) / (k - 1)
            n0 = (n - (n_i**2).sum() / n) / (k - 1)
            denominator = msb + (n0 - 1) * msw
            icc = (msb - msw) / denominator if denominator > 0 else None
            icc_ci = _icc_interval(msb, msw, k, n, n0)
        out.append(SelfConsistency(k, sd, icc, icc_ci))
    return out


def _icc_interval(msb: float, msw: float, k: int, n: int, n0: float) -> tuple[float, float] | None:
    if msw <= 0 or n - k < 1:
        return None
    f = msb / msw
    f_low = f / float(fdtri(k - 1, n - k, 0.975))
    f_high = f * float(fdtri(n - k, k - 1, 0.975))
    return (f_low - 1) / (f_low + n0 - 1), (f_high - 1) / (f_high + n0 - 1)


@dataclass(frozen=True)
class HumanLlmAgreement:
    """How one human rater's scores rank essays compared with one LLM evaluator (or with the
    consensus, the mean of all LLM evaluators per essay)."""

    human_evaluator: str
    llm_evaluator: str
    """An LLM evaluator label, or ``consensus``."""
    spearman: float | None
    """Spearman correlation over the essays both scored (``None`` below 3 or when constant)."""
    n: int
    """Essays both scored."""
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"human_evaluator": self.human_evaluator, "llm_evaluator": self.llm_evaluator,
                "spearman": self.spearman, "n": self.n, "ci_low": self.ci_low, "ci_high": self.ci_high}


def human_llm_rows(scores: PreparedScores, matrix: np.ndarray) -> list[HumanLlmAgreement]:
    """For each human rater: agreement with each LLM evaluator and with the LLM consensus."""
    humans = [j for j, name in enumerate(scores.evaluators) if is_human(name)]
    llms = [j for j, name in enumerate(scores.evaluators) if not is_human(name)]
    out: list[HumanLlmAgreement] = []
    if not llms:
        return out
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # essays no LLM scored: NaN consensus
        consensus = np.nanmean(matrix[:, llms], axis=1)
    for h in humans:
        for j in llms:
            rho, n = spearman(matrix[:, h], matrix[:, j])
            out.append(HumanLlmAgreement(scores.evaluators[h], scores.evaluators[j], rho, n, *spearman_interval(rho, n)))
        rho, n = spearman(matrix[:, h], consensus)
        out.append(HumanLlmAgreement(scores.evaluators[h], CONSENSUS, rho, n, *spearman_interval(rho, n)))
    return out
