"""The evaluator-adjusted essay model: ``score = essay + evaluator offset + error``.

Every essay mean, its interval and P(top k) come from this model, so that an evaluator's
calibration offset never moves an essay up or down the ranking (a harsh judge that fails to
parse on some essays would otherwise lift exactly those essays), and the interval reflects the
scatter that remains once offsets are removed.

Model, for score ``r`` of essay ``e`` by evaluator ``j``::

    y_ejr = a_e + b_j + eps_ejr,    sum of b_j over each connected part of the design = 0

``a_e`` is the essay's mean over the evaluator panel (the panel is fixed: the offsets average
to 0 over it). ``eps`` holds essay × evaluator disagreement and replicate noise; with
replicates the two are split (:attr:`EssayModelFit.interaction_var`,
:attr:`EssayModelFit.replicate_var`).

Estimation is an exact least-squares solve, not an iteration: the essays are eliminated
(``a = D_e⁻¹ (s - N b)``), leaving a dense system over the evaluators only (the Schur
complement ``S = D_j - Nᵀ D_e⁻¹ N``), solved with a sum-to-zero contrast per connected
part. Cost: one sparse product and one ``J × J`` solve, whatever the number of essays. The
solution is checked against the normal equations and an error is raised if it does not
satisfy them. A design whose essays and evaluators fall into several unconnected parts is
fitted part by part and reported (:attr:`EssayModelFit.n_parts`): essay means from different
parts are on different evaluators' scales and are not comparable.

Uncertainty: ``Cov(a_hat) = s² (D_e⁻¹ + M Cov(b_hat)/s² Mᵀ)`` with ``M = D_e⁻¹ N``; draws of
the essay means (for P(top k)) are multivariate t with that covariance, drawn in chunks so
100,000 essays never need a dense matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import stdtrit

from ._table import AnalysisInputError, PreparedScores

__all__ = ["EssayModelFit", "fit_essay_model", "project_out"]

CONFIDENCE = 0.95
_CHUNK_CELLS = 4_000_000
_SOLVE_TOLERANCE = 1e-8


@dataclass(frozen=True)
class EssayModelFit:
    """The fitted essay + evaluator model (see the module docstring)."""

    essay_ids: tuple[str, ...]
    """Sorted essay ids (as :attr:`PreparedScores.essays`)."""
    evaluator_ids: tuple[str, ...]
    """Sorted evaluator labels (as :attr:`PreparedScores.evaluators`)."""
    means: np.ndarray
    """Evaluator-adjusted essay means ``a_e``: the essay's mean over the panel."""
    se: np.ndarray
    """Standard error of each mean (NaN when the model has no residual degrees of freedom)."""
    offsets: np.ndarray
    """Evaluator offsets ``b_j`` (sum 0 over each connected part)."""
    offset_cov: np.ndarray
    """``J × J`` covariance of the offsets."""
    residual_sd: float
    """Residual standard deviation (essay × evaluator disagreement plus replicate noise)."""
    df_resid: int
    n_scores: np.ndarray
    """Scores per essay."""
    n_evaluators: np.ndarray
    """Distinct evaluators per essay."""
    n_parts: int
    """Connected parts of the essay-evaluator design (1 = every essay comparable)."""
    part_of_essay: np.ndarray
    replicate_var: float | None
    """Within essay × evaluator cell variance (replicate noise); None without replicates."""
    interaction_var: float | None
    """Essay × evaluator disagreement (method of moments, truncated at 0); None without replicates."""
    df_replicate: int
    mean_replicates: float
    """Average scores per essay × evaluator cell."""
    _loadings: np.ndarray
    """``E × r`` factor of the shared (offset-estimation) part of the essay-mean covariance."""

    @property
    def ci_low(self) -> np.ndarray:
        return self.means - self._half_width()

    @property
    def ci_high(self) -> np.ndarray:
        return self.means + self._half_width()

    def _half_width(self) -> np.ndarray:
        if self.df_resid < 1:
            return np.full(self.means.size, np.nan)
        return stdtrit(self.df_resid, 1 - (1 - CONFIDENCE) / 2) * self.se

    def residuals(self, scores: PreparedScores) -> np.ndarray:
        """``y - a_e - b_j`` per score row."""
        return scores.y - self.means[scores.essay_index] - self.offsets[scores.evaluator_index]

    def iter_draws(self, n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Chunks of draws (rows) of all essay means from the fitted model: multivariate t with
        the estimates' covariance, centred on the estimates. Nothing when ``df_resid < 1``."""
        if self.df_resid < 1 or not np.isfinite(self.residual_sd):
            return
        k = self.means.size
        chunk = max(1, min(n, _CHUNK_CELLS // max(1, k)))
        own = self.residual_sd / np.sqrt(self.n_scores.astype(np.float64))
        done = 0
        while done < n:
            size = min(chunk, n - done)
            # One chi-square per draw makes the draw multivariate t (the spread is estimated).
            scale = np.sqrt(self.df_resid / rng.chisquare(self.df_resid, size=size))[:, None]
            noise = rng.standard_normal((size, k)) * own
            if self._loadings.shape[1]:
                noise += rng.standard_normal((size, self._loadings.shape[1])) @ self._loadings.T
            yield self.means + scale * noise
            done += size

    def draws(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n × n_essays`` draws (see :meth:`iter_draws`; mind the memory at many essays)."""
        chunks = list(self.iter_draws(n, rng))
        return np.vstack(chunks) if chunks else np.zeros((0, self.means.size))

    def top_k_probabilities(self, ks: tuple[int, ...], n_draws: int, rng: np.random.Generator) -> dict[int, np.ndarray] | None:
        """``k → P(essay in the top k)`` over draws of the model; None when not computable.
        Ties at the k-th place share the remaining places, so each k's probabilities sum to k."""
        if self.df_resid < 1:
            return None
        hits = {k: np.zeros(self.means.size) for k in ks}
        for draws in self.iter_draws(n_draws, rng):
            rounded = np.round(draws, 10)
            for k in ks:
                hits[k] += top_k_credit(rounded, k).sum(axis=0)
        return {k: hits[k] / n_draws for k in ks}


def top_k_credit(means: np.ndarray, k: int) -> np.ndarray:
    """Per draw (row): 1 for essays above the k-th best, a share for ties at it."""
    n = means.shape[1]
    if k >= n:
        return np.ones_like(means)
    kth = -np.partition(-means, k - 1, axis=1)[:, k - 1:k]
    above = means > kth
    tied = means == kth
    free = k - above.sum(axis=1, keepdims=True)
    return above + tied * (free / tied.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class _Solver:
    """The parts of the normal equations that do not depend on the response."""

    counts: sparse.csr_matrix
    """``E × J`` scores per essay and evaluator."""
    n_e: np.ndarray
    n_j: np.ndarray
    contrast: np.ndarray
    """``J × (J - parts)`` sum-to-zero contrasts per connected part."""
    schur_inv: np.ndarray
    """Inverse of ``Cᵀ S C``."""
    n_parts: int
    part_of_essay: np.ndarray

    def solve(self, scores: PreparedScores, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares essay effects and evaluator offsets of ``values`` (one per row)."""
        e, j = scores.essay_index, scores.evaluator_index
        s_e = np.bincount(e, weights=values, minlength=self.n_e.size)
        t_j = np.bincount(j, weights=values, minlength=self.n_j.size)
        rhs = t_j - self.counts.T @ (s_e / self.n_e)
        offsets = self.contrast @ (self.schur_inv @ (self.contrast.T @ rhs))
        means = (s_e - self.counts @ offsets) / self.n_e
        _check_solution(self, means, offsets, s_e, t_j)
        return means, offsets


def _check_solution(solver: _Solver, means: np.ndarray, offsets: np.ndarray, s_e: np.ndarray, t_j: np.ndarray) -> None:
    """The solution must satisfy the evaluator normal equations; fail loudly if it does not."""
    lhs = solver.counts.T @ means + solver.n_j * offsets
    scale = max(1.0, float(np.abs(t_j).max(initial=0.0)))
    error = float(np.abs(lhs - t_j).max(initial=0.0)) / scale
    if not np.isfinite(error) or error > _SOLVE_TOLERANCE:
        raise AnalysisInputError(
            f"the essay + evaluator model could not be solved exactly (relative error {error:.2e}); "
            "the design is numerically degenerate: check for evaluators with almost no scores"
        )


def _contrast(parts: np.ndarray, n_parts: int) -> np.ndarray:
    """Sum-to-zero contrasts within each connected part: part members ``j1..jm`` give columns
    ``e_jk - e_jm`` (k < m)."""
    columns = []
    n_j = parts.size
    for part in range(n_parts):
        members = np.flatnonzero(parts == part)
        for member in members[:-1]:
            column = np.zeros(n_j)
            column[member], column[members[-1]] = 1.0, -1.0
            columns.append(column)
    return np.stack(columns, axis=1) if columns else np.zeros((n_j, 0))


def _solver(scores: PreparedScores) -> _Solver:
    e, j = scores.essay_index, scores.evaluator_index
    n_essays, n_evaluators = scores.n_essays, len(scores.evaluators)
    counts = sparse.csr_matrix((np.ones(e.size), (e, j)), shape=(n_essays, n_evaluators))
    counts.sum_duplicates()
    n_e = np.asarray(counts.sum(axis=1)).ravel()
    n_j = np.asarray(counts.sum(axis=0)).ravel()
    graph = sparse.bmat([[None, counts], [counts.T, None]]).tocsr()
    n_parts, labels = connected_components(graph, directed=False)
    part_of_essay, part_of_evaluator = labels[:n_essays], labels[n_essays:]
    # Renumber parts 0..P-1 in order of first essay, so part numbers are stable.
    _, first = np.unique(part_of_essay, return_index=True)
    order = {int(label): rank for rank, label in enumerate(part_of_essay[np.sort(first)])}
    part_of_essay = np.array([order[int(p)] for p in part_of_essay], dtype=np.int64)
    part_of_evaluator = np.array([order[int(p)] for p in part_of_evaluator], dtype=np.int64)
    scaled = sparse.diags(1.0 / n_e) @ counts
    schur = np.diag(n_j) - np.asarray((counts.T @ scaled).todense())
    contrast = _contrast(part_of_evaluator, len(order))
    reduced = contrast.T @ schur @ contrast
    schur_inv = np.linalg.inv(reduced) if reduced.size else np.zeros((0, 0))
    return _Solver(counts, n_e, n_j, contrast, schur_inv, len(order), part_of_essay)


def project_out(scores: PreparedScores, values: np.ndarray) -> np.ndarray:
    """``values`` (one per score row) minus their least-squares essay + evaluator fit: what no
    essay effect and no evaluator offset explains (used to estimate extra terms, e.g. a judge's
    preference for its own model's essays, by Frisch-Waugh)."""
    means, offsets = _solver(scores).solve(scores, np.asarray(values, dtype=np.float64))
    return values - means[scores.essay_index] - offsets[scores.evaluator_index]


def _replicate_split(scores: PreparedScores, residual_var: float, df_resid: int) -> tuple[float | None, float | None, int, float]:
    """Pure replicate error (within essay × evaluator cells) and essay × evaluator disagreement."""
    cell = scores.essay_index * len(scores.evaluators) + scores.evaluator_index
    _, codes, sizes = np.unique(cell, return_inverse=True, return_counts=True)
    n_cells = sizes.size
    mean_replicates = scores.n_scores / n_cells
    df_pure = scores.n_scores - n_cells
    if df_pure < 1:
        return None, None, 0, mean_replicates
    means = np.bincount(codes, weights=scores.y) / sizes
    ss_pure = float(((scores.y - means[codes]) ** 2).sum())
    replicate = ss_pure / df_pure
    df_lof = df_resid - df_pure
    if df_lof < 1:
        return replicate, None, df_pure, mean_replicates
    ms_lof = (residual_var * df_resid - ss_pure) / df_lof
    # E[MS_lack-of-fit] = replicate + r0 · interaction, r0 the effective replicates per cell.
    r0 = (scores.n_scores - float((sizes**2).sum()) / scores.n_scores) / max(1, n_cells - 1)
    interaction = max(0.0, (ms_lof - replicate) / max(r0, 1.0))
    return replicate, interaction, df_pure, mean_replicates


def fit_essay_model(scores: PreparedScores) -> EssayModelFit:
    """Fit ``score = essay + evaluator offset + error`` exactly (see the module docstring)."""
    solver = _solver(scores)
    means, offsets = solver.solve(scores, scores.y)
    residual = scores.y - means[scores.essay_index] - offsets[scores.evaluator_index]
    df = scores.n_scores - scores.n_essays - solver.contrast.shape[1]
    rss = float((residual**2).sum())
    residual_var = rss / df if df >= 1 else float("nan")
    offset_cov_unit = solver.contrast @ solver.schur_inv @ solver.contrast.T
    # Factor of the shared part: M F with F Fᵀ = C S⁻¹ Cᵀ (symmetric PSD, rank J - parts).
    values, vectors = np.linalg.eigh(offset_cov_unit) if offset_cov_unit.size else (np.zeros(0), np.zeros((0, 0)))
    keep = values > max(values.max(initial=0.0), 0.0) * 1e-12
    factor = vectors[:, keep] * np.sqrt(values[keep])
    m = sparse.diags(1.0 / solver.n_e) @ solver.counts
    loadings_unit = np.asarray(m @ factor) if factor.size else np.zeros((scores.n_essays, 0))
    sd = float(np.sqrt(residual_var)) if df >= 1 else float("nan")
    se = sd * np.sqrt(1.0 / solver.n_e + (loadings_unit**2).sum(axis=1))
    replicate, interaction, df_pure, mean_reps = _replicate_split(scores, residual_var, df) if df >= 1 else (None, None, 0, 1.0)
    n_evaluators = np.diff(solver.counts.indptr)
    return EssayModelFit(
        essay_ids=scores.essays,
        evaluator_ids=scores.evaluators,
        means=means,
        se=se,
        offsets=offsets,
        offset_cov=offset_cov_unit * (residual_var if df >= 1 else np.nan),
        residual_sd=sd,
        df_resid=int(df),
        n_scores=solver.n_e.astype(np.int64),
        n_evaluators=n_evaluators.astype(np.int64),
        n_parts=solver.n_parts,
        part_of_essay=solver.part_of_essay,
        replicate_var=replicate,
        interaction_var=interaction,
        df_replicate=df_pure,
        mean_replicates=mean_reps,
        _loadings=loadings_unit * (sd if df >= 1 else 0.0),
    )
