"""Factor level means and their differences, honouring the design (issue 19).

**Estimand.** A level's mean is the expected score of a *new* draft of that level on the
cohort's own combinations, averaged over the cohort's essay templates and the fixed evaluator
panel. Scores enter as evaluator-adjusted essay means (``_essay_model``), so an evaluator's
offset moves no level.

**Units and cells.** Essays that share a draft share its text, and drafts share their
combination: the independent unit is the *draft* (``draft_gen_id``; without it, each essay is
its own unit). Unit-level factors are the essay-level columns constant within a draft
(combination, draft template, draft model); their combinations are the *cells*. A unit's
response is the mean of its essays. Within-unit factors (essay template, essay model) vary
inside a draft and are compared draft by draft (paired).

**Model.** When some cell holds two or more drafts, the cell-means model is used: each cell's
mean of draft responses, the variance from the pooled within-cell variance of draft responses
(degrees of freedom = drafts - cells). This is exact at two drafts per cell, where a bootstrap
of drafts within cells gives about half the variance. When no cell is replicated, the drafts'
responses are fitted with an additive model over the unit-level factors, whose residual (cell
interactions plus draft noise) is the error. A level's mean is the average of the fitted cell
values over the cells that hold it (combinations weighted equally), with its variance from the
model: a t interval.

**Families.** Each factor's pairwise differences form one family: simultaneous 95% intervals
by the max-|t| method (the 95th percentile of the largest |t| over the family, simulated from
the multivariate t of the contrasts; Tukey-Kramer in balanced designs) for unit-level and
evaluator-level factors, Bonferroni for paired within-unit factors. With more than
:data:`MAX_ALL_PAIRS` levels, each level is compared with the mean of all levels (analysis of
means), never with the observed best, which the data selected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit

from ._essay_model import EssayModelFit
from ._model import LevelDifference, LevelResult
from ._table import DRAFT_COLUMN, PreparedScores

__all__ = ["DesignSummary", "LevelOutcome", "level_outcome"]

CONFIDENCE = 0.95
MAX_ALL_PAIRS = 12
"""A factor with more levels than this compares each level with the mean of all levels."""
MEAN_OF_LEVELS = "(mean of all levels)"
MIN_UNITS = 2
"""Fewest units (drafts, or essays without draft ids) a level needs for an interval."""
TOO_FEW = "too few to say"


def _level(factor: str, level: str, mean: float, variance: float, df: int, n: int, n_essays: int, n_units: int,
           n_evaluators: int, note: str | None) -> LevelResult:
    """A level with its t interval; no interval when the note says "too few to say"."""
    half = _t(df) * float(np.sqrt(max(variance, 0.0))) if note != TOO_FEW else float("nan")
    low, high = mean - half, mean + half
    return LevelResult(factor, level, float(mean), float(low) if np.isfinite(low) else None,
                       float(high) if np.isfinite(high) else None, n, n_essays, n_units, n_evaluators, note)


@dataclass(frozen=True)
class DesignSummary:
    unit: str
    """``draft`` or ``essay``: what is treated as the independent unit."""
    n_units: int
    n_cells: int
    model: str
    """``cells`` (pooled within-cell variance) or ``additive`` (no replicated cell)."""
    df: int
    unit_factors: tuple[str, ...]
    within_unit_factors: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"unit": self.unit, "n_units": self.n_units, "n_cells": self.n_cells, "model": self.model,
                "df": self.df, "unit_factors": list(self.unit_factors),
                "within_unit_factors": list(self.within_unit_factors)}


@dataclass(frozen=True)
class LevelOutcome:
    levels: tuple[LevelResult, ...]
    differences: tuple[LevelDifference, ...]
    design: DesignSummary | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _UnitModel:
    """A linear model of unit responses: cell design rows, coefficients, their covariance."""

    cell_rows: np.ndarray
    """``cells × p`` design row of each cell."""
    beta: np.ndarray
    cov_unit: np.ndarray
    """``(X'X)⁺``: multiply by ``s2`` for the coefficients' covariance."""
    s2: float
    df: int
    kind: str
    units_per_cell: np.ndarray

    def emm(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Estimates ``W β`` and their covariance ``s2 W (X'X)⁺ Wᵀ`` for rows of ``weights``
        (each a combination of cell rows)."""
        return weights @ self.beta, self.s2 * weights @ self.cov_unit @ weights.T


def _unit_model(response: np.ndarray, cell_of_unit: np.ndarray, cell_codes: np.ndarray) -> _UnitModel:
    """Cell-means model when some cell is replicated, else additive over the factor codes."""
    n_cells = cell_codes.shape[0]
    sizes = np.bincount(cell_of_unit, minlength=n_cells).astype(np.float64)
    df_pure = response.size - n_cells
    if df_pure >= 1:
        means = np.bincount(cell_of_unit, weights=response, minlength=n_cells) / sizes
        ss = float(((response - means[cell_of_unit]) ** 2).sum())
        return _UnitModel(np.eye(n_cells), means, np.diag(1.0 / sizes), ss / df_pure, int(df_pure), "cells", sizes)
    blocks = [np.ones((n_cells, 1))]
    for f in range(cell_codes.shape[1]):
        levels = np.unique(cell_codes[:, f])
        blocks.append((cell_codes[:, f][:, None] == levels[None, 1:]).astype(np.float64))
    cell_rows = np.hstack(blocks)
    x = cell_rows[cell_of_unit]
    xtx_pinv = np.linalg.pinv(x.T @ x)
    beta = xtx_pinv @ x.T @ response
    rank = int(np.linalg.matrix_rank(x))
    df = response.size - rank
    rss = float(((response - x @ beta) ** 2).sum())
    s2 = rss / df if df >= 1 else float("nan")
    return _UnitModel(cell_rows, beta, xtx_pinv, s2, int(df), "additive", sizes)


def _t(df: int) -> float:
    return float(stdtrit(df, 1 - (1 - CONFIDENCE) / 2)) if df >= 1 else float("nan")


def simultaneous_quantile(cov: np.ndarray, df: int, rng: np.random.Generator, n_sim: int = 4000) -> float:
    """The 95th percentile of ``max_i |T_i|`` where ``T`` is multivariate t with the
    correlation of ``cov`` and ``df`` degrees of freedom (single-step max-|t|)."""
    sd = np.sqrt(np.diag(cov))
    if cov.shape[0] == 1:
        return _t(df)
    corr = cov / np.outer(sd, sd)
    values, vectors = np.linalg.eigh(corr)
    factor = vectors * np.sqrt(np.clip(values, 0.0, None))
    z = rng.standard_normal((n_sim, corr.shape[0])) @ factor.T
    scale = np.sqrt(rng.chisquare(df, size=n_sim) / df)[:, None] if df >= 1 else 1.0
    return float(np.quantile(np.abs(z / scale).max(axis=1), CONFIDENCE))


def _pairs(n_levels: int, order: list[int]) -> list[tuple[int, int]] | None:
    """All pairs (best mean first within a pair) up to MAX_ALL_PAIRS levels; None beyond."""
    if n_levels > MAX_ALL_PAIRS:
        return None
    return [(a, b) for pos, a in enumerate(order) for b in order[pos + 1:]]


def _family(factor: str, names: list[str], means: np.ndarray, cov: np.ndarray, df: int, ok: np.ndarray,
            rng: np.random.Generator) -> list[LevelDifference]:
    """Differences of one factor's levels with simultaneous (max-|t|) intervals."""
    order = sorted(range(len(names)), key=lambda i: (-means[i], names[i]))
    pairs = _pairs(len(names), order)
    rows: list[tuple[str, str, np.ndarray, bool]] = []
    if pairs is not None:
        for a, b in pairs:
            w = np.zeros(len(names))
            w[a], w[b] = 1.0, -1.0
            rows.append((names[a], names[b], w, bool(ok[a] and ok[b])))
    else:
        for a in order:
            w = np.full(len(names), -1.0 / len(names))
            w[a] += 1.0
            rows.append((names[a], MEAN_OF_LEVELS, w, bool(ok[a])))
    weights = np.array([r[2] for r in rows]) if rows else np.zeros((0, len(names)))
    estimates = weights @ means
    contrast_cov = weights @ cov @ weights.T
    usable = np.array([r[3] for r in rows], dtype=bool) & (np.diag(contrast_cov) > 0) if rows else np.zeros(0, bool)
    usable &= df >= 1
    method = "max-|t|" if pairs is not None else "max-|t| (each level vs the mean of all levels)"
    q = simultaneous_quantile(contrast_cov[np.ix_(usable, usable)], df, rng) if usable.any() else float("nan")
    t = _t(df)
    out = []
    for i, (a, b, _, _) in enumerate(rows):
        if not usable[i]:
            out.append(LevelDifference(factor, a, b, float(estimates[i]), None, None, None, None, method,
                                     int(usable.sum()), TOO_FEW))
            continue
        se = float(np.sqrt(contrast_cov[i, i]))
        est = float(estimates[i])
        out.append(LevelDifference(factor, a, b, est, est - q * se, est + q * se, est - t * se, est + t * se, method,
                                   int(usable.sum()), None))
    return out


def _codes(values: list[str]) -> tuple[list[str], np.ndarray]:
    names, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return [str(n) for n in names], codes.ravel().astype(np.int64)


def level_outcome(scores: PreparedScores, fit: EssayModelFit, rng: np.random.Generator) -> LevelOutcome:
    """Level means, differences and the design they rest on (see the module docstring)."""
    notes: list[str] = []
    essay_response = fit.means
    has_drafts = DRAFT_COLUMN in scores.frame.columns
    unit_names, unit_of_essay = _codes(scores.essay_levels(DRAFT_COLUMN) if has_drafts else list(scores.essays))
    n_units = len(unit_names)
    unit_factors, within = [], []
    for factor in scores.essay_factors:
        _, codes = _codes(scores.essay_levels(factor))
        per_unit = np.full(n_units, -1)
        per_unit[unit_of_essay] = codes
        constant = bool((per_unit[unit_of_essay] == codes).all())
        (unit_factors if constant else within).append(factor)
    if fit.n_parts > 1:
        notes.append(f"the essays and evaluators form {fit.n_parts} unconnected parts (no evaluator scored essays of "
                     "two parts): essay means of different parts are on different evaluators' scales")
    unit_response = np.bincount(unit_of_essay, weights=essay_response, minlength=n_units) / np.bincount(
        unit_of_essay, minlength=n_units)
    # Unit-level factor codes per unit.
    unit_level_codes: dict[str, tuple[list[str], np.ndarray]] = {}
    for factor in unit_factors:
        names, codes = _codes(scores.essay_levels(factor))
        per_unit = np.zeros(n_units, dtype=np.int64)
        per_unit[unit_of_essay] = codes
        unit_level_codes[factor] = (names, per_unit)
    stacked = np.stack([unit_level_codes[f][1] for f in unit_factors], axis=1) if unit_factors else np.zeros((n_units, 0), np.int64)
    if stacked.shape[1]:
        cells, cell_of_unit = np.unique(stacked, axis=0, return_inverse=True)
        cell_of_unit = cell_of_unit.ravel()
    else:
        cells, cell_of_unit = np.zeros((1, 0), np.int64), np.zeros(n_units, np.int64)
    model = _unit_model(unit_response, cell_of_unit, cells)
    if model.df < 1:
        notes.append("no degrees of freedom for the variance of drafts within cells: level intervals are not computable")
    design = DesignSummary("draft" if has_drafts else "essay", n_units, cells.shape[0], model.kind, model.df,
                           tuple(unit_factors), tuple(within))
    levels: list[LevelResult] = []
    differences: list[LevelDifference] = []
    n_per_essay = fit.n_scores
    for factor in unit_factors:
        names, per_unit = unit_level_codes[factor]
        column = list(unit_factors).index(factor)
        weights = np.zeros((len(names), model.cell_rows.shape[1]))
        units_in = np.bincount(per_unit, minlength=len(names))
        for code in range(len(names)):
            weights[code] = model.cell_rows[cells[:, column] == code].mean(axis=0)
        means, cov = model.emm(weights)
        ok = (units_in >= MIN_UNITS) & (model.df >= 1)
        for code, name in enumerate(names):
            in_level = per_unit[unit_of_essay] == code
            levels.append(_level(factor, name, float(means[code]), float(cov[code, code]), model.df,
                                 int(n_per_essay[in_level].sum()), int(in_level.sum()), int(units_in[code]), 0,
                                 None if ok[code] else TOO_FEW))
        differences += _family(factor, names, means, cov, model.df, ok, rng)
    for factor in within:
        lv, dv = _within_factor(scores, factor, essay_response, unit_of_essay, n_units, cell_of_unit, cells,
                                n_per_essay)
        levels += lv
        differences += dv
    grand_weights = model.cell_rows.mean(axis=0, keepdims=True)
    grand, grand_var = model.emm(grand_weights)
    ev_levels, ev_diffs = _evaluator_factors(scores, fit, float(grand[0]), float(grand_var[0, 0]), rng)
    levels += ev_levels
    differences += ev_diffs
    return LevelOutcome(tuple(levels), tuple(differences), design, tuple(notes))


def _within_factor(scores: PreparedScores, factor: str, essay_response: np.ndarray, unit_of_essay: np.ndarray,
                   n_units: int, cell_of_unit: np.ndarray, cells: np.ndarray,
                   n_per_essay: np.ndarray) -> tuple[list[LevelResult], list[LevelDifference]]:
    """A factor that varies inside drafts: per-draft means at each level; level means over
    (cell, level) cells; differences paired within drafts, Bonferroni over the family."""
    names, codes = _codes(scores.essay_levels(factor))
    k = len(names)
    key = unit_of_essay * k + codes
    present, inverse = np.unique(key, return_inverse=True)
    r = np.bincount(inverse, weights=essay_response) / np.bincount(inverse)
    pair_unit, pair_level = present // k, present % k
    table = np.full((n_units, k), np.nan)
    table[pair_unit, pair_level] = r
    # Level means: pseudo-units (draft, level) in cells (draft cell, level).
    pseudo_codes = np.column_stack([cells[cell_of_unit[pair_unit]], pair_level]) if cells.shape[1] else pair_level[:, None]
    pseudo_cells, pseudo_cell_of = np.unique(pseudo_codes, axis=0, return_inverse=True)
    model = _unit_model(r, pseudo_cell_of.ravel(), pseudo_cells)
    rows: list[LevelResult] = []
    for code, name in enumerate(names):
        w = model.cell_rows[pseudo_cells[:, -1] == code].mean(axis=0, keepdims=True)
        mean, var = model.emm(w)
        units_in = int((pair_level == code).sum())
        ok = units_in >= MIN_UNITS and model.df >= 1
        mask = codes == code
        rows.append(_level(factor, name, float(mean[0]), float(var[0, 0]), model.df, int(n_per_essay[mask].sum()),
                           int(mask.sum()), units_in, 0, None if ok else TOO_FEW))
    level_means = {row.level: row.mean for row in rows}
    order = sorted(range(k), key=lambda i: (-level_means[names[i]], names[i]))
    pairs = _pairs(k, order)
    if pairs is None:
        # Many levels inside drafts: each level vs the mean of the draft's other levels.
        pairs = [(a, -1) for a in order]
    family = len(pairs)
    alpha = (1 - CONFIDENCE) / family
    out: list[LevelDifference] = []
    for a, b in pairs:
        other = np.nanmean(np.delete(table, a, axis=1), axis=1) if b == -1 else table[:, b]
        z_all = table[:, a] - other
        have = np.isfinite(z_all)
        label_b = MEAN_OF_LEVELS if b == -1 else names[b]
        z = z_all[have]
        if z.size < MIN_UNITS:
            out.append(LevelDifference(factor, names[a], label_b, float(np.nanmean(z)) if z.size else float("nan"),
                                     None, None, None, None, "Bonferroni (paired within drafts)", family, TOO_FEW))
            continue
        used_cells, cell_of = np.unique(cell_of_unit[have], return_inverse=True)
        pair_model = _unit_model(z, cell_of.ravel(), cells[used_cells] if cells.shape[1] else np.zeros((used_cells.size, 0), np.int64))
        est, var = pair_model.emm(pair_model.cell_rows.mean(axis=0, keepdims=True))
        if pair_model.df < 1:
            out.append(LevelDifference(factor, names[a], label_b, float(est[0]), None, None, None, None,
                                     "Bonferroni (paired within drafts)", family, TOO_FEW))
            continue
        se = float(np.sqrt(max(var[0, 0], 0.0)))
        q = float(stdtrit(pair_model.df, 1 - alpha / 2))
        t = _t(pair_model.df)
        out.append(LevelDifference(factor, names[a], label_b, float(est[0]), float(est[0] - q * se), float(est[0] + q * se),
                                 float(est[0] - t * se), float(est[0] + t * se), "Bonferroni (paired within drafts)",
                                 family, None))
    return rows, out


def _evaluator_factors(scores: PreparedScores, fit: EssayModelFit, grand: float, grand_var: float,
                       rng: np.random.Generator) -> tuple[list[LevelResult], list[LevelDifference]]:
    """Evaluator-level axes are calibration: a level's mean is the score its evaluators would
    give the cohort's average essay (grand mean plus their average offset)."""
    rows: list[LevelResult] = []
    diffs: list[LevelDifference] = []
    counts = np.bincount(scores.evaluator_index, minlength=len(scores.evaluators))
    for factor in scores.evaluator_factors:
        names, codes = _codes(scores.evaluator_levels(factor))
        weights = np.zeros((len(names), len(scores.evaluators)))
        for code in range(len(names)):
            members = codes == code
            weights[code, members] = 1.0 / members.sum()
        offsets = weights @ fit.offsets
        cov = weights @ fit.offset_cov @ weights.T
        ok = np.array([(codes == c).sum() >= 1 for c in range(len(names))]) & np.isfinite(np.diag(cov))
        for code, name in enumerate(names):
            members = codes == code
            n_eval = int(members.sum())
            note = f"rests on {n_eval} evaluator{'s' if n_eval != 1 else ''}" if n_eval < 3 else None
            rows.append(_level(factor, name, grand + float(offsets[code]), grand_var + float(cov[code, code]),
                               fit.df_resid, int(counts[members].sum()), 0, 0, n_eval, note))
        diffs += _family(factor, names, offsets, cov, fit.df_resid, ok, rng)
    return rows, diffs
