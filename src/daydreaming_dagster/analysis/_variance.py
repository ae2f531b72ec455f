"""Share of score variance by axis, essay, evaluator and residual (ANOVA variance components).

Model, for the score of essay ``i`` by evaluator ``j``::

    y = a_i + b_j + e        a_i = mu + sum_f effect_f[level_f(i)] + u_i   (essay-level axes)
                             b_j =      sum_g effect_g[level_g(j)] + v_j   (evaluator-level axes)

Estimation, in two stages that suit unbalanced factorial designs:

1. ``a`` and ``b`` by least squares (the additive essay + evaluator model, solved by
   alternating means); ``e``'s variance from its residuals (``residual``: replicate noise and
   essay × evaluator disagreement).
2. The essay effects ``a_i`` are decomposed over the essay-level axes with Type II sums of
   squares (each axis adjusted for all others, fitted on essays); an axis's variance
   component is the method-of-moments estimate ``(SS_f - df_f · MS_E) / n_essays``, truncated
   at 0, where ``MS_E`` is the essays' residual mean square. ``essay`` is what remains
   between essays (``MS_E`` minus the noise the estimate of each ``a_i`` carries), which also
   holds interactions between axes. The evaluator effects ``b_j`` are decomposed the same way
   over evaluator-level axes (``evaluator`` is what remains between evaluators).

A share is a component over the sum of all components: the fraction of the variance of one
score, drawn at random from the design, that the axis accounts for. Before truncation the
estimates are unbiased in balanced designs; with truncation a null axis's estimate sits at or
near 0 and its CI reaches 0. CIs come from the cluster bootstrap over essays (bias-corrected
percentile intervals of the untruncated estimates, see ``_api``): each resample
recomputes stage 2 and the residual, and updates the evaluator effects by one least-squares
step from the full-data fit (the essays drawn change them only slightly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits

from ._table import PreparedScores

__all__ = ["VarianceDraws", "variance_components"]

ESSAY = "essay"
EVALUATOR = "evaluator"
RESIDUAL = "residual"
DISAGREEMENT = "essay x evaluator"
"""With replicates: systematic disagreement of an evaluator about an essay (per score)."""
REPLICATE = "replicate"
"""With replicates: the scatter of one evaluator's repeated scores of one essay."""


@dataclass(frozen=True)
class VarianceDraws:
    """Components (point estimates) and their bootstrap draws, by name."""

    names: tuple[str, ...]
    """Essay-level axes, ``essay``, evaluator-level axes, ``evaluator``, ``residual``."""
    levels: tuple[str, ...]
    """Per name: ``essay``, ``evaluator`` or ``score``: the unit it varies over."""
    raw_point: np.ndarray
    """Method-of-moments estimates before truncation at 0 (a null axis scatters around 0)."""
    raw_draws: np.ndarray
    """``n_boot × len(names)`` untruncated estimates (NaN rows: a stage had no data)."""
    notes: tuple[str, ...]

    @property
    def point(self) -> np.ndarray:
        """The variance components (truncated at 0)."""
        return np.maximum(self.raw_point, 0.0)

    @property
    def shares(self) -> np.ndarray:
        total = self.point.sum()
        return self.point / total if total > 0 else np.full_like(self.point, np.nan)

    @property
    def raw_shares(self) -> np.ndarray:
        """Untruncated component over the total of the truncated ones."""
        total = self.point.sum()
        return self.raw_point / total if total > 0 else np.full_like(self.point, np.nan)

    @property
    def raw_share_draws(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.raw_draws / np.maximum(self.raw_draws, 0.0).sum(axis=1, keepdims=True)


def _design(codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Unique cells of the factor codes: the cell of each unit, the dummy design of the cells
    (intercept first, first level of each factor dropped) and each factor's column indices."""
    n_units = codes[0].size if codes else 0
    if not codes:
        return np.zeros(n_units, dtype=np.int64), np.ones((1, 1)), []
    stacked = np.stack(codes, axis=1)
    cells, cell_of_unit = np.unique(stacked, axis=0, return_inverse=True)
    blocks, columns, next_column = [], [], 1
    for f in range(len(codes)):
        levels = np.unique(codes[f])
        blocks.append((cells[:, f][:, None] == levels[None, 1:]).astype(np.float64))
        columns.append(np.arange(next_column, next_column + levels.size - 1))
        next_column += levels.size - 1
    return cell_of_unit.ravel(), np.hstack([np.ones((cells.shape[0], 1)), *blocks]), columns


def _rss(gram: np.ndarray, cross: np.ndarray, total: float, columns: np.ndarray) -> tuple[float, int]:
    """Weighted residual sum of squares and rank of the least-squares fit on ``columns``, from
    the Gram matrix X'WX, X'Wy and y'Wy (a pseudo-inverse handles aliased columns)."""
    values, vectors = np.linalg.eigh(gram[np.ix_(columns, columns)])
    keep = values > values.max() * 1e-10
    projected = vectors[:, keep].T @ cross[columns]
    return total - float((projected**2 / values[keep]).sum()), int(keep.sum())


def _anova(values: np.ndarray, unit_weights: np.ndarray, noise: np.ndarray, codes: list[np.ndarray]) -> np.ndarray:
    """Per resample row: the component of each factor, then the remaining between-unit one."""
    n_units = values.shape[1]
    cell_of_unit, design, factor_columns = _design(codes)
    if not codes:
        cell_of_unit = np.zeros(n_units, dtype=np.int64)
    all_columns = np.arange(design.shape[1])
    reduced = [np.setdiff1d(all_columns, cols) for cols in factor_columns]
    n_cells = design.shape[0]
    member = sparse.csr_matrix((np.ones(n_units), (np.arange(n_units), cell_of_unit)), shape=(n_units, n_cells))
    clean = np.where(unit_weights > 0, values, 0.0)
    w_cell = np.asarray((member.T @ unit_weights.T).T)
    a_cell = np.asarray((member.T @ (unit_weights * clean).T).T)
    q_cell = np.asarray((member.T @ (unit_weights * clean**2).T).T)
    out = np.full((values.shape[0], len(factor_columns) + 1), np.nan)
    # Many tiny matrices: BLAS threads cost more to start than they save (and fight over cores).
    with threadpool_limits(limits=1):
        _anova_rows(out, design, all_columns, reduced, w_cell, a_cell, q_cell, unit_weights, noise)
    return out


def _anova_rows(out: np.ndarray, design: np.ndarray, all_columns: np.ndarray, reduced: list[np.ndarray],
                w_cell: np.ndarray, a_cell: np.ndarray, q_cell: np.ndarray, unit_weights: np.ndarray,
                noise: np.ndarray) -> None:
    for row in range(out.shape[0]):
        keep = w_cell[row] > 0
        n = float(unit_weights[row].sum())
        if n < 2 or not keep.any():
            continue
        w, mean = w_cell[row, keep], a_cell[row, keep] / w_cell[row, keep]
        within = float((q_cell[row, keep] - a_cell[row, keep] * mean).sum())
        # Centring changes no residual (every model has an intercept) and avoids cancellation.
        centred = mean - (w * mean).sum() / w.sum()
        x = design[keep]
        gram = (x * w[:, None]).T @ x
        cross = x.T @ (w * centred)
        total = float((w * centred**2).sum())
        rss_full, rank_full = _rss(gram, cross, total, all_columns)
        df_error = n - rank_full
        ms_error = (within + rss_full) / df_error if df_error > 0 else np.nan
        error = ms_error if np.isfinite(ms_error) else float(noise[row])
        for f, columns in enumerate(reduced):
            rss, rank = _rss(gram, cross, total, columns)
            out[row, f] = (rss - rss_full - (rank_full - rank) * error) / n
        out[row, -1] = ms_error - float(noise[row]) if np.isfinite(ms_error) else 0.0


def _aliased(codes: list[np.ndarray], names: tuple[str, ...]) -> list[str]:
    """Factors with several levels whose columns the other factors already span (confounded:
    Type II sums of squares attribute their shared variance to neither)."""
    if len(codes) < 2:
        return []
    _, design, columns = _design(codes)
    full = np.linalg.matrix_rank(design)
    return [name for name, cols in zip(names, columns, strict=True)
            if cols.size and np.linalg.matrix_rank(np.delete(design, cols, axis=1)) == full]


def _replicate_split(scores: PreparedScores, all_w: np.ndarray, rss: np.ndarray, df: np.ndarray) -> np.ndarray | None:
    """Per resample row: (essay × evaluator disagreement, replicate noise), or None without
    replicates. Replicate noise is the pooled variance within essay × evaluator cells; the
    disagreement is the lack-of-fit mean square of the additive model minus it, divided by the
    effective replicates per cell (method of moments, untruncated for the bootstrap)."""
    n_essays, n_evaluators = scores.n_essays, len(scores.evaluators)
    cell = scores.essay_index * n_evaluators + scores.evaluator_index
    cells, codes, sizes = np.unique(cell, return_inverse=True, return_counts=True)
    if scores.n_scores - cells.size < 1:
        return None
    cell_mean = np.bincount(codes, weights=scores.y) / sizes
    essay_of_cell = cells // n_evaluators
    ss_pure_i = np.bincount(scores.essay_index, weights=(scores.y - cell_mean[codes]) ** 2, minlength=n_essays)
    df_pure_i = np.bincount(scores.essay_index, minlength=n_essays) - np.bincount(essay_of_cell, minlength=n_essays)
    cells_i = np.bincount(essay_of_cell, minlength=n_essays)
    sq_i = np.bincount(essay_of_cell, weights=sizes.astype(np.float64) ** 2, minlength=n_essays)
    n_i = np.bincount(scores.essay_index, minlength=n_essays).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_pure, df_pure = all_w @ ss_pure_i, all_w @ df_pure_i
        replicate = ss_pure / df_pure
        df_lof = df - df_pure
        lof = np.where(df_lof > 0, (rss - ss_pure) / np.where(df_lof > 0, df_lof, 1), np.nan)
        total_n, total_cells = all_w @ n_i, all_w @ cells_i
        r0 = (total_n - (all_w @ sq_i) / total_n) / np.maximum(total_cells - 1, 1)
        disagreement = np.where(np.isfinite(lof), (lof - replicate) / np.maximum(r0, 1.0), 0.0)
    return np.column_stack([disagreement, replicate])


def _factor_codes(levels: list[list[str]]) -> list[np.ndarray]:
    return [np.unique(np.asarray(values, dtype=str), return_inverse=True)[1].ravel() for values in levels]


def variance_components(scores: PreparedScores, weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> VarianceDraws:
    """Variance components of the score (see the module docstring), with bootstrap draws for
    the cluster weights ``weights`` (resample × essay). ``a`` and ``b`` are the exact
    least-squares essay effects and evaluator offsets (``_essay_model``)."""
    e, j, y = scores.essay_index, scores.evaluator_index, scores.y
    n_essays, n_evaluators = scores.n_essays, len(scores.evaluators)
    cells = sparse.csr_matrix((np.ones(y.size), (e, j)), shape=(n_essays, n_evaluators))
    cells.sum_duplicates()
    n_components = connected_components(sparse.bmat([[None, cells], [cells.T, None]]), directed=False)[0]
    notes: list[str] = []

    # Every resample as a row; row 0 of `all_w` is the data itself (all weights 1).
    all_w = np.vstack([np.ones((1, n_essays)), weights])
    sums = sparse.csr_matrix((y, (e, j)), shape=(n_essays, n_evaluators))
    counts = cells.astype(np.float64)
    n_i = np.asarray(counts.sum(axis=1)).ravel()
    s_i = np.asarray(sums.sum(axis=1)).ravel()
    q_i = np.bincount(e, weights=y**2, minlength=n_essays)
    centred = sums - sparse.diags(a) @ counts
    with np.errstate(invalid="ignore", divide="ignore"):
        n_j = np.asarray((counts.T @ all_w.T).T)
        b_w = np.asarray((centred.T @ all_w.T).T) / n_j
    b_w[0] = b
    present_j = n_j > 0
    b_w = np.where(present_j, b_w, np.nan)
    b_w -= np.nanmean(b_w, axis=1, keepdims=True)
    b_fill = np.where(present_j, b_w, 0.0)
    cb = np.asarray((counts @ b_fill.T).T)
    a_w = (s_i - cb) / n_i
    sb = np.asarray((sums @ b_fill.T).T)
    cbb = np.asarray((counts @ (b_fill**2).T).T)
    rss_i = q_i - 2 * a_w * s_i - 2 * sb + n_i * a_w**2 + 2 * a_w * cb + cbb
    rss = (all_w * rss_i).sum(axis=1)
    df = (all_w * (n_i - 1)).sum(axis=1) - (present_j.sum(axis=1) - n_components)
    residual = np.where(df > 0, np.maximum(rss, 0.0) / np.where(df > 0, df, 1), 0.0)
    split = _replicate_split(scores, all_w, rss, df)
    if df[0] <= 0:
        notes.append("no residual degrees of freedom (one score per essay and evaluator pair, "
                     "and a design where essay and evaluator effects use them all): residual share set to 0")

    essay_noise = (all_w * residual[:, None] / n_i).sum(axis=1) / all_w.sum(axis=1)
    essay_levels = _factor_codes([scores.essay_levels(f) for f in scores.essay_factors])
    essay_part = _anova(a_w, all_w, essay_noise, essay_levels)

    with np.errstate(invalid="ignore", divide="ignore"):
        evaluator_noise = np.nanmean(np.where(present_j, residual[:, None] / n_j, np.nan), axis=1)
    evaluator_levels = _factor_codes([scores.evaluator_levels(f) for f in scores.evaluator_factors])
    if n_evaluators >= 2:
        evaluator_part = _anova(b_w, present_j.astype(np.float64), evaluator_noise, evaluator_levels)
    else:
        evaluator_part = np.zeros((all_w.shape[0], len(evaluator_levels) + 1))
        notes.append("one evaluator: no evaluator variance")
    if scores.evaluator_factors and n_evaluators - 1 <= sum(len(set(c)) - 1 for c in evaluator_levels):
        notes.append("evaluators are fully described by their axes: the evaluator share is 0 by construction")

    for unit, codes, factors in (("essay", essay_levels, scores.essay_factors),
                                 ("evaluator", evaluator_levels, scores.evaluator_factors)):
        aliased = _aliased(codes, factors)
        if aliased:
            notes.append(f"{' and '.join(aliased)} are confounded with other {unit}-level axes (no {unit} separates "
                         "them): the variance they share is attributed to none of them")
    names: tuple[str, ...] = (*scores.essay_factors, ESSAY, *scores.evaluator_factors, EVALUATOR, RESIDUAL)
    levels: tuple[str, ...] = (*(["essay"] * (len(scores.essay_factors) + 1)),
                               *(["evaluator"] * (len(scores.evaluator_factors) + 1)), "score")
    table = np.hstack([essay_part, evaluator_part, residual[:, None]])
    if split is not None:
        names, levels = (*names[:-1], DISAGREEMENT, REPLICATE), (*levels, "score")
        table = np.hstack([table[:, :-1], split])
    return VarianceDraws(tuple(names), tuple(levels), table[0], table[1:], tuple(notes))
