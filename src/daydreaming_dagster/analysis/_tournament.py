"""The pairwise tournament (issue 20): Bradley–Terry strengths with ties and a position effect.

Model. A comparison shows essay ``i`` first (A) and essay ``j`` second (B) to a judge; with
log-strengths ``θ``, a first-shown effect ``γ`` and a tie parameter ``ν``::

    d = θ_i - θ_j + γ,    D = e^(d/2) + e^(-d/2) + e^ν
    P(A wins) = e^(d/2) / D,   P(B wins) = e^(-d/2) / D,   P(tie) = e^ν / D

This is Davidson's (1970) extension of Bradley–Terry to ties, ``π_i / (π_i + π_j + e^ν √(π_i π_j))``
with ``π = e^θ``, and the "home advantage" of Agresti (2002, §10.6) as the position effect: for
two equal essays the first shown wins a decisive verdict with probability ``logistic(γ)``.
Strengths are on the log scale (a difference of 1 is odds e ≈ 2.7 of winning a decisive
verdict) and centred: mean 0 over the essays of each connected part of the comparison graph.

Fitting: penalised maximum likelihood by Newton's method with step halving. The strengths get a
ridge penalty ``ridge/2 · Σθ²`` (a N(0, 1/ridge) prior, MAP estimate; default
:data:`DEFAULT_RIDGE` = 0.1, a prior sd of 3.2), so an essay that won (or lost) every
comparison still gets a finite strength; the penalty also centres the strengths. ``γ`` and ``ν``
get a weak penalty (:data:`NUISANCE_RIDGE`) so that a judge answering "A" every time still gives
a finite effect. A judge with no tie has ``ν = -∞`` (the model is then plain Bradley–Terry for
it). With ``ties=False`` a tie counts as half a win for each essay; with ``ties=False,
position=False`` and ``ridge=0`` the fit is the plain Bradley–Terry MLE (``choix.ilsr_pairwise``),
with ``ridge=α`` it is ``choix.opt_pairwise(alpha=α)``.

Pooled fit: one strength per essay, one common position effect (the panel's average
first-shown advantage, the headline ``position_bias``) and one tie parameter per judge (how
often a judge calls a tie is its own style). Per-judge fits give each judge its own strengths,
position effect and tie parameter. Human judges (``human:<rater>``) are always fitted as judges
of their own and enter the pooled fit only with ``include_humans``.

Intervals: a cluster bootstrap over unordered essay pairs. Every comparison of the same two
essays (both orders, every judge, every replicate) is one unit: those verdicts share whatever
the judges think of that particular pair, so they are not independent, and keeping both orders
of a pair together keeps the balance of orders that separates the position effect from the
strengths. Percentile intervals of the refitted strengths and position effect; P(top k) is the
share of resamples in which the essay is among the k strongest (an essay absent from a resample
is not counted in it). The Swiss pairing chose later pairs from earlier verdicts; resampling the
pairs treats them as given, so the intervals describe these pairings, not a new tournament.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, ndtri
from scipy.stats import kendalltau

from ..results.comparisons import HUMAN_JUDGE_PREFIX, VERDICT_SCHEMA
from ._essay_model import top_k_credit
from ._estimates import percentile_ci
from ._judges import wilson_interval
from ._model import _num

__all__ = [
    "DEFAULT_RIDGE",
    "HUMAN_JUDGE_PREFIX",
    "NUISANCE_RIDGE",
    "VERDICT_SCHEMA",
    "BradleyTerryFit",
    "Consistency",
    "EssayStrength",
    "PositionBias",
    "RankAgreement",
    "Tournament",
    "TournamentFit",
    "analyze_tournament",
    "fit_bradley_terry",
    "pair_consistency",
    "rank_agreement",
]

DEFAULT_RIDGE = 0.1
"""Ridge on the strengths: a N(0, 10) prior (sd 3.2 on the log scale, i.e. odds up to e^6)."""
NUISANCE_RIDGE = 0.01
"""Weak ridge on the position effect and the tie parameters (keeps degenerate judges finite)."""
POOLED = "pooled"
"""``judge`` value of the pooled fit's rows in the tables."""
TOP_KS = (1, 5)
VERDICTS = ("A", "B", "tie")
_MAX_ITER = 100
_STEP_TOLERANCE = 1e-9
_GRADIENT_TOLERANCE = 1e-9
_TAU_Z_VARIANCE = 0.437
"""Fieller, Hartley & Pearson (1957): var(atanh(tau)) ≈ 0.437 / (n - 4)."""
_Z = float(ndtri(0.975))


# -- the fit --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Design:
    """Verdicts as index arrays (one entry per comparison)."""

    essays: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    win_a: np.ndarray
    """1 when A won, 0.5 for a tie with ties disabled, else 0."""
    win_b: np.ndarray
    tie: np.ndarray
    """1 for a tie (0 everywhere when ties are disabled)."""
    position_group: np.ndarray
    n_position: int
    """Position-effect groups (0 when the effect is disabled)."""
    tie_group: np.ndarray
    tie_groups: tuple[str, ...]
    pair: np.ndarray
    """Bootstrap unit: index of the unordered essay pair."""


def _design(verdicts: pl.DataFrame, *, ties: bool, position: bool, position_by_judge: bool,
            ties_by_judge: bool) -> _Design:
    essays = tuple(sorted(set(verdicts["essay_a"].to_list()) | set(verdicts["essay_b"].to_list())))
    index = {e: i for i, e in enumerate(essays)}
    a = np.array([index[e] for e in verdicts["essay_a"].to_list()], dtype=np.int64)
    b = np.array([index[e] for e in verdicts["essay_b"].to_list()], dtype=np.int64)
    verdict = np.array(verdicts["verdict"].to_list(), dtype=object)
    tie = (verdict == "tie").astype(np.float64)
    win_a, win_b = (verdict == "A").astype(np.float64), (verdict == "B").astype(np.float64)
    if not ties:
        win_a, win_b, tie = win_a + tie / 2, win_b + tie / 2, np.zeros_like(tie)
    judges = verdicts["judge"].to_list()
    judge_names = tuple(sorted(set(judges)))
    judge_index = np.array([judge_names.index(j) for j in judges], dtype=np.int64) if judges else np.zeros(0, np.int64)
    if position:
        groups, n_position = (judge_index, len(judge_names)) if position_by_judge else (np.zeros(a.size, np.int64), 1)
    else:
        groups, n_position = np.zeros(a.size, np.int64), 0
    tie_group, tie_groups = (judge_index, judge_names) if ties_by_judge else (np.zeros(a.size, np.int64), ("all",))
    low, high = np.minimum(a, b), np.maximum(a, b)
    _, pair = np.unique(low * max(1, len(essays)) + high, return_inverse=True)
    return _Design(essays, a, b, win_a, win_b, tie, groups, n_position, tie_group, tie_groups, pair.ravel())


@dataclass(frozen=True)
class _Params:
    theta: np.ndarray
    gamma: np.ndarray
    nu: np.ndarray
    """Per tie group; ``-inf`` for a group without ties."""
    converged: bool
    iterations: int


def _parts(design: _Design, weights: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected parts of the comparison graph (comparisons with positive weight)."""
    n = len(design.essays)
    used = weights > 0
    graph = coo_matrix((np.ones(int(used.sum())), (design.a[used], design.b[used])), shape=(n, n))
    n_parts, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    order = {int(label): rank for rank, label in enumerate(labels[np.sort(first)])}
    return n_parts, np.array([order[int(p)] for p in labels], dtype=np.int64)


def _mle_exists(design: _Design, weights: np.ndarray) -> bool:
    """Whether the unpenalised strengths are finite (Zermelo 1929, Ford 1957): within each
    connected part, every essay must beat, directly or through others, every other essay
    (the "beat" graph strongly connected; a tie is a half win each way)."""
    n = len(design.essays)
    used = weights > 0
    a_wins = used & (design.win_a > 0)
    b_wins = used & (design.win_b > 0)
    tie = used & (design.tie > 0)
    losers = np.concatenate([design.b[a_wins], design.a[b_wins], design.a[tie], design.b[tie]])
    winners = np.concatenate([design.a[a_wins], design.b[b_wins], design.b[tie], design.a[tie]])
    beat = coo_matrix((np.ones(losers.size), (losers, winners)), shape=(n, n))
    n_strong, _ = connected_components(beat, directed=True, connection="strong")
    return n_strong == _parts(design, weights)[0]


def _terms(design: _Design, params: np.ndarray, n: int, active: np.ndarray, nu_index: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per comparison: d, ν (-inf when inactive), and the scaled e^(d/2), e^(-d/2), e^ν."""
    theta = params[:n]
    d = theta[design.a] - theta[design.b]
    if design.n_position:
        d = d + params[n + design.position_group]
    nu_col = n + design.n_position + np.maximum(nu_index[design.tie_group], 0)
    nu = np.where(active[design.tie_group], params[np.minimum(nu_col, params.size - 1)], -np.inf)
    top = np.maximum(np.maximum(d / 2, -d / 2), nu)
    return d, nu, top, np.exp(d / 2 - top), np.exp(-d / 2 - top)


def _objective(design: _Design, weights: np.ndarray, params: np.ndarray, n: int, active: np.ndarray,
               nu_index: np.ndarray, ridge: float) -> float:
    d, nu, top, s, t = _terms(design, params, n, active, nu_index)
    u = np.exp(nu - top)
    log_d = top + np.log(s + t + u)
    tie_term = np.where(design.tie > 0, design.tie * np.where(np.isfinite(nu), nu, 0.0), 0.0)
    loglik = weights * ((design.win_a - design.win_b) * d / 2 + tie_term - log_d)
    penalty = ridge / 2 * float(params[:n] @ params[:n]) + NUISANCE_RIDGE / 2 * float(params[n:] @ params[n:])
    return -float(loglik.sum()) + penalty


def _newton(design: _Design, weights: np.ndarray, ridge: float, start: _Params | None = None) -> _Params:
    """Penalised ML by Newton's method with step halving (see the module docstring)."""
    n, n_pos = len(design.essays), design.n_position
    tie_weight = np.bincount(design.tie_group, weights=weights * design.tie, minlength=len(design.tie_groups))
    active = tie_weight > 0
    nu_index = np.where(active, np.cumsum(active) - 1, -1)
    n_nu = int(active.sum())
    size = n + n_pos + n_nu
    params = np.zeros(size)
    if start is not None:
        params[:n] = start.theta
        params[n:n + n_pos] = start.gamma
        start_nu = np.where(np.isfinite(start.nu), start.nu, 0.0)
        params[n + n_pos:] = start_nu[active]
    # With ridge = 0 the likelihood is flat along a shift of each part's strengths: adding the
    # projector onto those directions makes the Newton system regular without moving the
    # solution (the gradient is orthogonal to them).
    deflate = None
    if ridge == 0:
        n_parts, part = _parts(design, weights)
        deflate = np.zeros((n, n))
        for p in range(n_parts):
            members = np.flatnonzero(part == p)
            deflate[np.ix_(members, members)] += 1.0 / members.size
    a, b = design.a, design.b
    g_col = n + design.position_group
    nu_col = n + n_pos + np.maximum(nu_index[design.tie_group], 0)
    has_nu = active[design.tie_group]
    value = _objective(design, weights, params, n, active, nu_index, ridge)
    converged, iteration = False, 0
    for iteration in range(1, _MAX_ITER + 1):  # noqa: B007 - the count is reported
        d, nu, top, s, t = _terms(design, params, n, active, nu_index)
        u = np.exp(nu - top)
        total = s + t + u
        # First and second derivatives of the per-comparison log-likelihood in d and ν.
        grad_d = weights * ((design.win_a - design.win_b) / 2 - (s - t) / (2 * total))
        grad_nu = weights * (design.tie - u / total)
        h_dd = weights * ((s + t) / (4 * total) - (s - t) ** 2 / (4 * total**2))
        h_nn = weights * (u / total - u**2 / total**2)
        h_dn = weights * (-(s - t) * u / (2 * total**2))
        gradient = np.zeros(size)
        gradient += np.bincount(a, weights=-grad_d, minlength=size)
        gradient += np.bincount(b, weights=grad_d, minlength=size)
        rows, cols, vals = [a, b, a, b], [a, b, b, a], [h_dd, h_dd, -h_dd, -h_dd]
        if n_pos:
            gradient += np.bincount(g_col, weights=-grad_d, minlength=size)
            rows += [a, g_col, b, g_col, g_col]
            cols += [g_col, a, g_col, b, g_col]
            vals += [h_dd, h_dd, -h_dd, -h_dd, h_dd]
        if n_nu:
            sel = has_nu
            gradient += np.bincount(nu_col[sel], weights=-grad_nu[sel], minlength=size)
            an, bn, nn, hdn = a[sel], b[sel], nu_col[sel], h_dn[sel]
            rows += [an, nn, bn, nn, nn]
            cols += [nn, an, nn, bn, nn]
            vals += [hdn, hdn, -hdn, -hdn, h_nn[sel]]
            if n_pos:
                gn = g_col[sel]
                rows += [gn, nn]
                cols += [nn, gn]
                vals += [hdn, hdn]
        flat = np.concatenate(rows) * size + np.concatenate(cols)
        hessian = np.bincount(flat, weights=np.concatenate(vals), minlength=size * size).reshape(size, size)
        gradient[:n] += ridge * params[:n]
        gradient[n:] += NUISANCE_RIDGE * params[n:]
        hessian[np.diag_indices(size)] += np.r_[np.full(n, ridge), np.full(size - n, NUISANCE_RIDGE)]
        if deflate is not None:
            hessian[:n, :n] += deflate
        if float(np.abs(gradient).max(initial=0.0)) < _GRADIENT_TOLERANCE:
            converged = True
            break
        step = np.linalg.solve(hessian, -gradient)
        scale = 1.0
        for _ in range(40):
            candidate = params + scale * step
            new_value = _objective(design, weights, candidate, n, active, nu_index, ridge)
            if new_value <= value + 1e-12 * max(1.0, abs(value)):
                break
            scale /= 2
        params, value = candidate, new_value
        if float(np.abs(scale * step).max(initial=0.0)) < _STEP_TOLERANCE:
            converged = True
            break
    nu_full = np.full(len(design.tie_groups), -np.inf)
    nu_full[active] = params[n + n_pos:]
    if ridge == 0 and not _mle_exists(design, weights):
        converged = False  # the likelihood keeps rising towards an infinite strength: no MLE
    return _Params(params[:n].copy(), params[n:n + n_pos].copy(), nu_full, converged, iteration)


@dataclass(frozen=True)
class BradleyTerryFit:
    """A fitted Bradley–Terry–Davidson model with a position effect (see the module docstring)."""

    essay_ids: tuple[str, ...]
    """Sorted essay ids."""
    strengths: np.ndarray
    """Log-strengths ``θ``, mean 0 within each connected part."""
    position_effect: np.ndarray
    """``γ`` per position group (one, or one per judge); empty when the effect is off."""
    position_groups: tuple[str, ...]
    tie_parameters: np.ndarray
    """``ν`` per tie group (``-inf``: the group never tied)."""
    tie_groups: tuple[str, ...]
    n_comparisons: int
    n_parts: int
    """Connected parts of the comparison graph (1: every essay comparable with every other)."""
    part_of_essay: np.ndarray
    ridge: float
    converged: bool
    iterations: int

    @property
    def parts(self) -> tuple[tuple[str, ...], ...]:
        """Essay ids of each connected part (largest first when several)."""
        groups = [tuple(e for e, p in zip(self.essay_ids, self.part_of_essay, strict=True) if p == k)
                  for k in range(self.n_parts)]
        return tuple(sorted(groups, key=lambda g: (-len(g), g)))

    def strength_of(self) -> dict[str, float]:
        return {e: float(s) for e, s in zip(self.essay_ids, self.strengths, strict=True)}


def _check_verdicts(verdicts: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("essay_a", "essay_b", "judge", "verdict") if c not in verdicts.columns]
    if missing:
        raise ValueError(f"verdict frame lacks column(s) {', '.join(missing)}; expected {', '.join(VERDICT_SCHEMA)}")
    bad = sorted(set(verdicts["verdict"].to_list()) - set(VERDICTS))
    if bad:
        raise ValueError(f"unknown verdict(s) {', '.join(map(repr, bad))}; expected A, B or tie")
    same = verdicts.filter(pl.col("essay_a") == pl.col("essay_b"))
    if same.height:
        raise ValueError(f"a comparison of an essay with itself: {same['essay_a'][0]}")
    return verdicts


def fit_bradley_terry(
    verdicts: pl.DataFrame,
    *,
    ties: bool = True,
    position: bool = True,
    ridge: float = DEFAULT_RIDGE,
    position_by_judge: bool = False,
    ties_by_judge: bool = True,
    weights: np.ndarray | None = None,
) -> BradleyTerryFit:
    """Fit the Bradley–Terry model with Davidson ties and a first-shown effect to a verdict frame
    (``essay_a, essay_b, judge, verdict`` at least; see :data:`VERDICT_SCHEMA`).

    ``ties``/``position`` switch the tie parameter and the position effect; ``ridge`` is the
    penalty on the strengths (0: maximum likelihood, finite only when every part of the graph is
    strongly connected). ``position_by_judge`` fits one position effect per judge instead of a
    common one; ``ties_by_judge`` one tie parameter per judge. ``weights`` (one per row) weight
    the likelihood. Raises ``ValueError`` for a malformed frame or a negative ridge.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be at least 0, got {ridge}")
    _check_verdicts(verdicts)
    design = _design(verdicts, ties=ties, position=position, position_by_judge=position_by_judge,
                     ties_by_judge=ties_by_judge)
    w = np.ones(design.a.size) if weights is None else np.asarray(weights, dtype=np.float64)
    params = _newton(design, w, ridge)
    n_parts, part = _parts(design, w)
    groups = (design.tie_groups if position_by_judge else ("all",)) if design.n_position else ()
    return BradleyTerryFit(design.essays, params.theta, params.gamma, groups, params.nu, design.tie_groups,
                           int(design.a.size), n_parts, part, ridge, params.converged, params.iterations)


# -- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EssayStrength:
    essay_gen_id: str
    strength: float
    """Log-strength, mean 0 over the essays of its part."""
    ci_low: float | None
    """95% percentile interval over the pair bootstrap (None: too few resamples with the essay)."""
    ci_high: float | None
    p_top_1: float | None
    """Share of resamples in which it is the strongest (None when the graph is disconnected)."""
    p_top_5: float | None
    wins: int
    losses: int
    ties: int
    rank: int | None
    """1 = strongest; None when the comparison graph is disconnected (no common scale)."""
    part: int
    """Connected part of the comparison graph (0 = the largest)."""

    def to_dict(self) -> dict[str, Any]:
        return {"essay_gen_id": self.essay_gen_id, "strength": _num(self.strength), "ci_low": _num(self.ci_low),
                "ci_high": _num(self.ci_high), "p_top_1": _num(self.p_top_1), "p_top_5": _num(self.p_top_5),
                "wins": self.wins, "losses": self.losses, "ties": self.ties, "rank": self.rank, "part": self.part}


@dataclass(frozen=True)
class PositionBias:
    """The first-shown (essay A) effect ``γ`` with its bootstrap interval."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_first_wins: float | None
    """``logistic(γ)``: P(the first-shown of two equal essays wins a decisive verdict)."""
    p_first_wins_ci_low: float | None
    p_first_wins_ci_high: float | None
    share_first_wins: float | None
    """Observed share of decisive verdicts won by the first-shown essay (descriptive)."""
    n_decisive: int

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": _num(self.estimate), "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high),
                "p_first_wins": _num(self.p_first_wins), "p_first_wins_ci_low": _num(self.p_first_wins_ci_low),
                "p_first_wins_ci_high": _num(self.p_first_wins_ci_high),
                "share_first_wins": _num(self.share_first_wins), "n_decisive": self.n_decisive}


@dataclass(frozen=True)
class Consistency:
    """Pairs judged in both orders by the same judge (same template and replicate): the share
    whose two verdicts name the same winner once unswapped. Two ties agree; a tie against a win
    disagrees."""

    n_pairs: int
    n_agree: int
    share: float | None
    ci_low: float | None
    """Wilson 95% interval of the share."""
    ci_high: float | None
    first_shown_both: int
    """Disagreements where the first-shown essay won both times (position-driven flips)."""
    second_shown_both: int
    tie_mixed: int
    """Disagreements where one order was a tie and the other not."""

    def to_dict(self) -> dict[str, Any]:
        return {"n_pairs": self.n_pairs, "n_agree": self.n_agree, "share": _num(self.share),
                "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high), "first_shown_both": self.first_shown_both,
                "second_shown_both": self.second_shown_both, "tie_mixed": self.tie_mixed}


@dataclass(frozen=True)
class RankAgreement:
    """Kendall's tau-b between tournament strengths and the essays' score means."""

    tau: float | None
    ci_low: float | None
    """Fisher-z interval with the Fieller–Hartley–Pearson variance 0.437/(n-4); None for n < 5."""
    ci_high: float | None
    n: int
    """Essays with both a strength and a score mean."""

    def to_dict(self) -> dict[str, Any]:
        return {"tau": _num(self.tau), "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high), "n": self.n,
                "method": "Kendall tau-b, Fisher z interval (Fieller-Hartley-Pearson variance)"}


@dataclass(frozen=True)
class TournamentFit:
    """One fit: a judge's own verdicts, or the pooled panel."""

    judge: str
    """The judge, or ``pooled``."""
    judges: tuple[str, ...]
    """Judges whose verdicts the fit uses."""
    n_comparisons: int
    strengths: tuple[EssayStrength, ...]
    """Strongest first (within part order when disconnected)."""
    position_bias: PositionBias
    tie_probability: float | None
    """P(tie) for two equal essays, no position effect (fits of one judge; None for several)."""
    consistency: Consistency
    tau_with_scores: RankAgreement | None
    n_parts: int
    parts: tuple[tuple[str, ...], ...]
    """Essays of each connected part, only when there are several."""
    converged: bool
    notes: tuple[str, ...] = ()

    @property
    def is_human(self) -> bool:
        return self.judge.startswith(HUMAN_JUDGE_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge, "human": self.is_human, "judges": list(self.judges),
            "n_comparisons": self.n_comparisons, "n_essays": len(self.strengths),
            "strengths": [s.to_dict() for s in self.strengths],
            "position_bias": self.position_bias.to_dict(), "tie_probability": _num(self.tie_probability),
            "consistency": self.consistency.to_dict(),
            "tau_with_scores": self.tau_with_scores.to_dict() if self.tau_with_scores else None,
            "connected_parts": self.n_parts, "parts": [list(p) for p in self.parts], "converged": self.converged,
            "notes": list(self.notes),
        }


_STRENGTH_SCHEMA: dict[str, pl.DataType] = {
    "judge": pl.String(), "essay_gen_id": pl.String(), "strength": pl.Float64(), "ci_low": pl.Float64(),
    "ci_high": pl.Float64(), "p_top_1": pl.Float64(), "p_top_5": pl.Float64(), "wins": pl.Int64(),
    "losses": pl.Int64(), "ties": pl.Int64(), "rank": pl.Int64(), "part": pl.Int64(),
}
_JUDGE_SCHEMA: dict[str, pl.DataType] = {
    "judge": pl.String(), "human": pl.Boolean(), "n_comparisons": pl.Int64(), "n_essays": pl.Int64(),
    "position_bias": pl.Float64(), "position_ci_low": pl.Float64(), "position_ci_high": pl.Float64(),
    "p_first_wins": pl.Float64(), "tie_probability": pl.Float64(), "consistency": pl.Float64(),
    "consistency_ci_low": pl.Float64(), "consistency_ci_high": pl.Float64(), "consistent_pairs": pl.Int64(),
    "both_order_pairs": pl.Int64(), "tau_with_scores": pl.Float64(), "tau_ci_low": pl.Float64(),
    "tau_ci_high": pl.Float64(), "connected_parts": pl.Int64(),
}


@dataclass(frozen=True)
class Tournament:
    """The tournament analysis of a cohort: the pooled fit and one fit per judge."""

    pooled: TournamentFit
    judges: tuple[TournamentFit, ...]
    """Every judge, LLM and human (``human:<rater>``), each fitted on its own verdicts."""
    include_humans: bool
    ridge: float
    n_boot: int
    seed: int
    skipped: int = 0
    """Comparisons of the cohort without a usable verdict (failed, unparsed)."""
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        pooled = self.pooled
        return {
            "model": "Bradley-Terry with Davidson ties and a first-shown (A) effect, penalised maximum likelihood",
            "ridge": self.ridge, "n_boot": self.n_boot, "seed": self.seed, "bootstrap_unit": "unordered essay pair",
            "include_humans": self.include_humans, "pooled_judges": list(pooled.judges),
            "n_comparisons": pooled.n_comparisons, "n_essays": len(pooled.strengths), "skipped": self.skipped,
            "strengths": [s.to_dict() for s in pooled.strengths],
            "position_bias": pooled.position_bias.to_dict(),
            "consistency": pooled.consistency.to_dict(),
            "tau_with_scores": pooled.tau_with_scores.to_dict() if pooled.tau_with_scores else None,
            "connected_parts": pooled.n_parts, "parts": [list(p) for p in pooled.parts],
            "converged": pooled.converged,
            "judges": [j.to_dict() for j in self.judges],
            "notes": list(self.notes),
        }

    def tables(self) -> dict[str, pl.DataFrame]:
        """``tournament_strengths`` (pooled rows have ``judge = pooled``) and ``tournament_judges``."""
        return tournament_tables(self)


def tournament_tables(tournament: Tournament | None) -> dict[str, pl.DataFrame]:
    """The tournament's CSV/DuckDB tables; empty tables (same columns) for ``None``."""
    fits = (tournament.pooled, *tournament.judges) if tournament is not None else ()
    strengths = [{"judge": f.judge, **{k: v for k, v in s.to_dict().items()}} for f in fits for s in f.strengths]
    judges = []
    for f in fits:
        tau = f.tau_with_scores
        judges.append({
            "judge": f.judge, "human": f.is_human, "n_comparisons": f.n_comparisons, "n_essays": len(f.strengths),
            "position_bias": _num(f.position_bias.estimate), "position_ci_low": _num(f.position_bias.ci_low),
            "position_ci_high": _num(f.position_bias.ci_high), "p_first_wins": _num(f.position_bias.p_first_wins),
            "tie_probability": _num(f.tie_probability), "consistency": _num(f.consistency.share),
            "consistency_ci_low": _num(f.consistency.ci_low), "consistency_ci_high": _num(f.consistency.ci_high),
            "consistent_pairs": f.consistency.n_agree, "both_order_pairs": f.consistency.n_pairs,
            "tau_with_scores": _num(tau.tau) if tau else None, "tau_ci_low": _num(tau.ci_low) if tau else None,
            "tau_ci_high": _num(tau.ci_high) if tau else None, "connected_parts": f.n_parts,
        })
    return {"tournament_strengths": pl.DataFrame(strengths, schema=_STRENGTH_SCHEMA, orient="row"),
            "tournament_judges": pl.DataFrame(judges, schema=_JUDGE_SCHEMA, orient="row")}


# -- statistics -----------------------------------------------------------------------------
def pair_consistency(verdicts: pl.DataFrame) -> Consistency:
    """Order consistency over pairs judged in both orders by one judge (see :class:`Consistency`).

    A pair is a (judge, template, replicate, unordered essay pair) with a verdict in each order;
    when an order was judged more than once there, its earliest round counts.
    """
    frame = verdicts.with_columns(
        pl.min_horizontal("essay_a", "essay_b").alias("_low"), pl.max_horizontal("essay_a", "essay_b").alias("_high"),
        pl.when(pl.col("verdict") == "A").then(pl.col("essay_a"))
          .when(pl.col("verdict") == "B").then(pl.col("essay_b")).otherwise(pl.lit("tie")).alias("_winner"),
    )
    keys = [c for c in ("judge", "template_id", "replicate") if c in frame.columns] + ["_low", "_high"]
    sort = [c for c in ("round", "comparison_gen_id") if c in frame.columns]
    frame = frame.sort(sort) if sort else frame
    forward = frame.filter(pl.col("essay_a") == pl.col("_low")).unique(keys, keep="first")
    backward = frame.filter(pl.col("essay_a") == pl.col("_high")).unique(keys, keep="first")
    both = forward.join(backward, on=keys, suffix="_back")
    n_pairs, agree, first, second, mixed = both.height, 0, 0, 0, 0
    for row in both.iter_rows(named=True):
        one, two = row["_winner"], row["_winner_back"]
        if one == two:
            agree += 1
        elif "tie" in (one, two):
            mixed += 1
        elif row["verdict"] == "A":  # the winners differ and neither is a tie: both A or both B
            first += 1
        else:
            second += 1
    low, high = wilson_interval(agree, n_pairs) if n_pairs else (None, None)
    return Consistency(n_pairs, agree, agree / n_pairs if n_pairs else None, low, high, first, second, mixed)


def rank_agreement(strengths: Mapping[str, float], score_means: Mapping[str, float]) -> RankAgreement | None:
    """Kendall's tau-b between two essay → value maps over their common essays (None below 2)."""
    common = sorted(set(strengths) & set(score_means))
    if len(common) < 2:
        return None
    x = np.array([strengths[e] for e in common])
    y = np.array([score_means[e] for e in common])
    tau = float(kendalltau(x, y).statistic)
    if not math.isfinite(tau):
        return RankAgreement(None, None, None, len(common))
    low = high = None
    if len(common) >= 5:
        z = math.atanh(min(max(tau, -0.9999), 0.9999))
        half = _Z * math.sqrt(_TAU_Z_VARIANCE / (len(common) - 4))
        low, high = math.tanh(z - half), math.tanh(z + half)
    return RankAgreement(tau, low, high, len(common))


def _record(verdicts: pl.DataFrame, essays: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """Wins, losses, ties per essay."""
    out = {e: [0, 0, 0] for e in essays}
    for a, b, v in zip(verdicts["essay_a"].to_list(), verdicts["essay_b"].to_list(), verdicts["verdict"].to_list(),
                       strict=True):
        if v == "tie":
            out[a][2] += 1
            out[b][2] += 1
        else:
            winner, loser = (a, b) if v == "A" else (b, a)
            out[winner][0] += 1
            out[loser][1] += 1
    return {e: (w, lo, t) for e, (w, lo, t) in out.items()}


@dataclass(frozen=True)
class _Draws:
    theta: np.ndarray
    """Resample × essay (NaN where the essay is absent from the resample)."""
    gamma: np.ndarray


def _bootstrap(design: _Design, point: _Params, ridge: float, n_boot: int, rng: np.random.Generator) -> _Draws:
    n_pairs = int(design.pair.max()) + 1 if design.pair.size else 0
    n = len(design.essays)
    theta = np.full((n_boot, n), np.nan)
    gamma = np.full(n_boot, np.nan)
    for r in range(n_boot):
        counts = rng.multinomial(n_pairs, np.full(n_pairs, 1.0 / n_pairs)).astype(np.float64)
        weights = counts[design.pair]
        present = (np.bincount(design.a, weights=weights, minlength=n) + np.bincount(design.b, weights=weights, minlength=n)) > 0
        params = _newton(design, weights, ridge, start=point)
        theta[r, present] = params.theta[present]
        if design.n_position:
            gamma[r] = params.gamma[0]
    return _Draws(theta, gamma)


def _p_top(theta: np.ndarray, k: int) -> np.ndarray:
    """P(top k) per essay over resamples, each essay over the resamples it appears in."""
    present = ~np.isnan(theta)
    filled = np.where(present, theta, -np.inf)
    credit = top_k_credit(np.round(filled, 10), k) * present
    seen = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, credit.sum(axis=0) / np.maximum(seen, 1), np.nan)


def _position_bias(verdicts: pl.DataFrame, estimate: float | None, draws: np.ndarray) -> PositionBias:
    decisive = verdicts.filter(pl.col("verdict") != "tie")
    share = float((decisive["verdict"] == "A").mean()) if decisive.height else None
    if estimate is None:
        return PositionBias(None, None, None, None, None, None, share, decisive.height)
    low, high = percentile_ci(draws[:, None]) if draws.size else (np.array([np.nan]), np.array([np.nan]))
    low_f, high_f = _num(float(low[0])), _num(float(high[0]))
    return PositionBias(estimate, low_f, high_f, float(expit(estimate)), _num(float(expit(low_f))) if low_f is not None else None,
                        _num(float(expit(high_f))) if high_f is not None else None, share, decisive.height)


def _fit_block(
    judge: str, verdicts: pl.DataFrame, *, ridge: float, n_boot: int, rng: np.random.Generator,
    score_means: Mapping[str, float] | None,
) -> TournamentFit:
    """Fit, bootstrap and summarise one set of verdicts."""
    design = _design(verdicts, ties=True, position=True, position_by_judge=False, ties_by_judge=True)
    weights = np.ones(design.a.size)
    point = _newton(design, weights, ridge)
    n_parts, part = _parts(design, weights)
    draws = _bootstrap(design, point, ridge, n_boot, rng)
    low, high = percentile_ci(draws.theta)
    connected = n_parts == 1
    tops = {k: _p_top(draws.theta, k) for k in TOP_KS} if connected else {}
    record = _record(verdicts, design.essays)
    notes: list[str] = []
    if not point.converged:
        notes.append(f"the fit did not converge in {_MAX_ITER} Newton steps; treat the strengths with caution")
    order = sorted(range(len(design.essays)), key=lambda i: (part[i], -point.theta[i], design.essays[i]))
    parts_sizes = np.bincount(part)
    # Parts renumbered largest first for reporting.
    part_rank = {int(p): r for r, p in enumerate(sorted(range(n_parts), key=lambda p: (-parts_sizes[p], p)))}
    order = sorted(order, key=lambda i: part_rank[int(part[i])])
    strengths = tuple(
        EssayStrength(design.essays[i], float(point.theta[i]), _num(float(low[i])), _num(float(high[i])),
                      _num(float(tops[1][i])) if tops else None, _num(float(tops[5][i])) if tops else None,
                      *record[design.essays[i]], rank if connected else None, part_rank[int(part[i])])
        for rank, i in enumerate(order, start=1)
    )
    fit_parts: tuple[tuple[str, ...], ...] = ()
    if not connected:
        fit_parts = tuple(tuple(design.essays[i] for i in order if part_rank[int(part[i])] == r) for r in range(n_parts))
        listed = "; ".join(f"part {r + 1}: {', '.join(p)}" for r, p in enumerate(fit_parts))
        notes.append(f"the comparison graph has {n_parts} unconnected parts, so essays in different parts were never "
                     f"compared, directly or through others: strengths are centred within each part, no overall "
                     f"ranking or P(top k) is given ({listed})")
    gamma = float(point.gamma[0]) if point.gamma.size else None
    tie_probability = None
    if len(design.tie_groups) == 1:  # one judge: its tie parameter says how readily it ties
        nu = float(point.nu[0])
        tie_probability = float(math.exp(nu) / (2 + math.exp(nu))) if math.isfinite(nu) else 0.0
    tau = None
    if score_means and connected:
        tau = rank_agreement({s.essay_gen_id: s.strength for s in strengths}, score_means)
    judges = tuple(sorted(set(verdicts["judge"].to_list())))
    return TournamentFit(judge, judges, verdicts.height, strengths, _position_bias(verdicts, gamma, draws.gamma),
                         tie_probability, pair_consistency(verdicts), tau, n_parts, fit_parts, point.converged,
                         tuple(notes))


def is_human_judge(judge: str) -> bool:
    return judge.startswith(HUMAN_JUDGE_PREFIX)


def analyze_tournament(
    verdicts: pl.DataFrame,
    *,
    score_means: Mapping[str, float] | None = None,
    include_humans: bool = False,
    seed: int = 0,
    n_boot: int = 1000,
    ridge: float = DEFAULT_RIDGE,
    skipped: int = 0,
) -> Tournament | None:
    """The tournament analysis of a verdict frame (LLM and ``human:<rater>`` judges), or None
    when it has no verdict.

    The pooled fit uses the LLM judges (all judges with ``include_humans``; the humans when
    there is no LLM verdict); every judge also gets a fit of its own. ``score_means`` (essay →
    evaluator-adjusted mean score) gives Kendall's tau with the score ranking. Deterministic
    for ``seed``.
    """
    if verdicts.height == 0:
        return None
    if n_boot < 1:
        raise ValueError(f"bootstrap resamples must be at least 1, got {n_boot}")
    _check_verdicts(verdicts)
    verdicts = verdicts.sort([c for c in ("judge", "round", "comparison_gen_id", "essay_a", "essay_b")
                              if c in verdicts.columns])
    human = verdicts["judge"].str.starts_with(HUMAN_JUDGE_PREFIX)
    notes: list[str] = []
    pool = verdicts if include_humans else verdicts.filter(~human)
    if pool.height == 0:
        notes.append("only human judges: they are the pooled panel")
        pool = verdicts
    judge_names = sorted(set(verdicts["judge"].to_list()))
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 20]).spawn(1 + len(judge_names))]
    pooled = _fit_block(POOLED, pool, ridge=ridge, n_boot=n_boot, rng=streams[0], score_means=score_means)
    notes.extend(pooled.notes)
    if len(judge_names) == 1:  # one judge: its own fit is the pooled fit
        judges: tuple[TournamentFit, ...] = (dataclasses.replace(pooled, judge=judge_names[0]),)
    else:
        judges = tuple(
            _fit_block(name, verdicts.filter(pl.col("judge") == name), ridge=ridge, n_boot=n_boot,
                       rng=streams[1 + i], score_means=score_means)
            for i, name in enumerate(judge_names)
        )
    if skipped:
        notes.append(f"{skipped} comparison(s) without a usable verdict (failed or unparsed) were left out")
    return Tournament(pooled, judges, include_humans, ridge, n_boot, seed, skipped, tuple(notes))


def empty_verdicts() -> pl.DataFrame:
    return pl.DataFrame(schema=VERDICT_SCHEMA)


def verdict_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A verdict frame from dicts (missing optional columns filled with defaults)."""
    defaults = {"comparison_gen_id": "", "judge": "judge", "template_id": "", "replicate": 1, "round": None}
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=VERDICT_SCHEMA)
