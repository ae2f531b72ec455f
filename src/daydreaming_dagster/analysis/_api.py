"""Entry points: analyse a score table or a cohort, write the analysis files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from ..data_layer import Paths, _storage
from ..results.export import write_csv
from ..results.scales import scale_bounds
from . import _agreement as agreement
from ._estimates import (
    cluster_weights,
    essay_estimates,
    level_estimates,
    level_pairs,
    percentile_ci,
    top_k_probabilities,
)
from ._model import (
    CONTENDER_FROM,
    TIE_BELOW,
    Analysis,
    Diversity,
    EssayResult,
    EvaluatorResult,
    LevelDifference,
    LevelResult,
    TopTie,
    VarianceShare,
)
from ._table import AnalysisInputError, PreparedScores, load_score_table, prepare_scores
from ._variance import variance_components

if TYPE_CHECKING:
    from ._diversity import DiversityInputs

__all__ = [
    "ANALYSIS_DIRNAME",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_SEED",
    "analyze_cohort_keyed",
    "analyze_cohort_or_empty",
    "SUMMARY_FILENAME",
    "analysis_dir",
    "analyze_cohort",
    "analyze_scores",
    "forget_recent_analyses",
    "human_llm_agreement",
    "write_analysis",
]

DEFAULT_BOOTSTRAP = 1000
"""Resamples used by the report and the Dagster assets (the CLI's ``--bootstrap`` default too)."""
DEFAULT_SEED = 0
"""Bootstrap seed of the report and the Dagster assets (same seed, same numbers)."""
ANALYSIS_DIRNAME = "analysis"
SUMMARY_FILENAME = "summary.json"


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def analyze_scores(
    table: pl.DataFrame | PreparedScores,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    top_k: tuple[int, ...] = (1, 5, 10),
    source: str = "score table",
    diversity: Diversity | None = None,
) -> Analysis:
    """Analyse a long score table (``essay_gen_id, evaluator, score[, scale]`` + factors).

    Returns an :class:`Analysis`: essay means with t intervals and top-k probabilities
    (draws from the fitted essay-mean model), level means and level differences with cluster-bootstrap CIs,
    variance shares with CIs, Krippendorff's alpha with a CI, pairwise and consensus Spearman
    correlations, self-consistency and human-vs-LLM agreement. Deterministic for ``seed``.
    Raises :class:`AnalysisInputError` for a table that cannot be analysed (see
    :func:`~daydreaming_dagster.analysis._table.prepare_scores`).
    """
    if n_boot < 1:
        raise AnalysisInputError(f"bootstrap resamples must be at least 1, got {n_boot}")
    ks = tuple(sorted({int(k) for k in top_k if int(k) >= 1}))
    scores = table if isinstance(table, PreparedScores) else prepare_scores(table, source)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    weights = cluster_weights(scores.n_essays, n_boot, streams[0])
    notes: list[str] = []
    if scores.normalised:
        notes.append(f"scores on different scales ({', '.join(scores.source_scales)}) were normalised to 0-1 "
                     "before they were combined; means and CIs are on 0-1")
    if scores.n_essays == 1:
        notes.append("one essay: no level comparison, ranking or agreement across essays is possible")

    essays = _essay_results(scores, ks, n_boot, streams[1])
    levels, differences = _level_results(scores, weights)
    variance = _variance_shares(scores, weights, notes)
    matrix = agreement.evaluator_matrix(scores)
    alpha = agreement.alpha_with_ci(matrix, weights)
    if alpha.reason:
        notes.append(f"evaluator agreement {alpha.reason}")
    top_tie = _top_tie(essays, ks, scores.n_essays)
    if top_tie.reason:
        notes.append(f"ranking stability {top_tie.reason}")

    return Analysis(
        n_essays=scores.n_essays,
        n_scores=scores.n_scores,
        scale=scores.scale,
        normalised=scores.normalised,
        source_scales=scores.source_scales,
        seed=seed,
        n_boot=n_boot,
        top_k=ks,
        essays=essays,
        levels=levels,
        differences=differences,
        variance=variance,
        alpha=alpha.alpha,
        alpha_ci=alpha.ci,
        alpha_note=alpha.reason,
        evaluators=_evaluator_results(scores, matrix),
        pairwise=tuple(agreement.pairwise_spearman(matrix, scores.evaluators)),
        human_vs_llm=tuple(agreement.human_llm_rows(scores, matrix)),
        top_tie=top_tie,
        diversity=diversity,
        notes=tuple(notes),
    )


def _top_tie(essays: tuple[EssayResult, ...], ks: tuple[int, ...], n_essays: int) -> TopTie:
    """Whether the top of the ranking is a statistical tie, and the essays contending for it."""
    if essays and 1 in ks and essays[0].p_top.get(1) is None:
        return TopTie(is_tie=False, contenders=(),
                      reason="not computable: no essay has two scores, so the spread of a score is unknown")
    first = {e.essay_gen_id: (e.p_top.get(1) or 0.0) for e in essays}
    contenders = tuple((e, p) for e, p in sorted(first.items(), key=lambda item: -item[1]) if p >= CONTENDER_FROM)
    best = max(first.values(), default=0.0)
    return TopTie(is_tie=n_essays > 1 and 1 in ks and best < TIE_BELOW, contenders=contenders)


def _essay_results(
    scores: PreparedScores, ks: tuple[int, ...], n_boot: int, rng: np.random.Generator
) -> tuple[EssayResult, ...]:
    """Essay means with pooled t intervals (clipped to the scale) and P(top k), best first."""
    essay = essay_estimates(scores)
    low_bound, high_bound = scale_bounds(scores.scale) if scores.scale else (-np.inf, np.inf)
    # The true mean lies on the scale: clipping the interval to it never loses coverage.
    low, high = np.clip(essay.ci_low, low_bound, high_bound), np.clip(essay.ci_high, low_bound, high_bound)
    p_top = top_k_probabilities(essay, ks, n_boot, rng)
    order = sorted(range(scores.n_essays), key=lambda i: (-essay.mean[i], -essay.n[i], scores.essays[i]))
    return tuple(
        EssayResult(scores.essays[i], float(essay.mean[i]), _float(low[i]), _float(high[i]), int(essay.n[i]),
                    {k: (float(p_top[k][i]) if p_top is not None else None) for k in ks})
        for i in order
    )


def _level_results(
    scores: PreparedScores, weights: np.ndarray
) -> tuple[tuple[LevelResult, ...], tuple[LevelDifference, ...]]:
    """Level means (by factor, best first) and level differences, with cluster-bootstrap CIs."""
    est = level_estimates(scores, weights)
    low, high = percentile_ci(est.draws)
    order = sorted(range(len(est.level)), key=lambda g: (_factor_rank(scores, est.factor[g]), -est.mean[g], est.level[g]))
    levels = tuple(
        LevelResult(est.factor[g], est.level[g], float(est.mean[g]), _float(low[g]), _float(high[g]),
                    int(est.n[g]), int(est.n_essays[g]))
        for g in order
    )
    differences = []
    for a, b in level_pairs(est):
        d_low, d_high = percentile_ci(est.draws[:, a] - est.draws[:, b])
        differences.append(LevelDifference(est.factor[a], est.level[a], est.level[b],
                                           float(est.mean[a] - est.mean[b]), _float(d_low), _float(d_high)))
    return levels, tuple(differences)


def _evaluator_results(scores: PreparedScores, matrix: np.ndarray) -> tuple[EvaluatorResult, ...]:
    """Per evaluator: n, mean, leave-one-out consensus correlation and flag, self-consistency."""
    consensus = agreement.consensus_correlations(matrix)
    consistency = agreement.self_consistency(scores)
    n_per = np.bincount(scores.evaluator_index, minlength=len(scores.evaluators))
    mean_per = np.bincount(scores.evaluator_index, weights=scores.y, minlength=len(scores.evaluators)) / n_per
    return tuple(
        EvaluatorResult(name, int(n_per[j]), float(mean_per[j]), consensus[j][0], consensus[j][1],
                        consensus[j][0] is not None and consensus[j][0] < agreement.FLAG_BELOW,
                        consistency[j].n_repeated, consistency[j].replicate_sd, consistency[j].icc)
        for j, name in enumerate(scores.evaluators)
    )


def _factor_rank(scores: PreparedScores, factor: str) -> int:
    columns = (*scores.essay_factors, *scores.evaluator_factors)
    return columns.index(factor)


def _variance_shares(scores: PreparedScores, weights: np.ndarray, notes: list[str]) -> tuple[VarianceShare, ...]:
    if scores.n_essays < 2:
        return ()
    components = variance_components(scores, weights)
    notes.extend(f"variance: {n}" for n in components.notes)
    shares = components.shares
    # Bias-corrected percentile interval on the untruncated estimates, clipped to [0, 1]:
    # resampling essays with replacement inflates every between-unit sum of squares, so the
    # draws sit above the estimate by about the noise term; shifting them back by their mean
    # excess (Efron & Tibshirani 1993, section 10.6) removes that. Untruncated, a null axis's
    # interval reaches 0 without collapsing to [0, 0].
    raw = components.raw_shares
    draws = components.raw_share_draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a component that is NaN in every resample
        shift = np.nanmean(draws, axis=0) - raw
    q_low, q_high = percentile_ci(draws)
    low, high = np.clip(q_low - shift, 0.0, 1.0), np.clip(q_high - shift, 0.0, 1.0)
    return tuple(
        VarianceShare(name, unit, float(components.point[i]), _float(shares[i]), _float(low[i]), _float(high[i]))
        for i, (name, unit) in enumerate(zip(components.names, components.levels, strict=True))
    )


def human_llm_agreement(table: pl.DataFrame) -> list[agreement.HumanLlmAgreement]:
    """For each ``human/<rater>`` evaluator: Spearman correlation and n against each LLM
    evaluator and against the LLM consensus (mean of the LLM evaluators per essay). Cheap: no
    resampling. Empty when the table has no rows, no human or no LLM scores."""
    if table.height == 0:
        return []
    scores = prepare_scores(table)
    return agreement.human_llm_rows(scores, agreement.evaluator_matrix(scores))


def analyze_cohort(
    data_root: str | os.PathLike[str] | Path,
    cohort_id: str,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    top_k: tuple[int, ...] = (1, 5, 10),
    include_human: bool = True,
    with_diversity: bool = True,
) -> Analysis:
    """:func:`analyze_scores` over :func:`load_score_table` of the cohort, plus text diversity
    (near-duplicate clusters of essays and drafts, similarity to the spec's target text).

    Raises :class:`AnalysisInputError` when the cohort has no parsed score yet and
    :class:`~daydreaming_dagster.results.cohort.CohortNotFoundError` for an unknown cohort.
    """
    return analyze_cohort_keyed(data_root, cohort_id, seed=seed, n_boot=n_boot, top_k=top_k,
                                include_human=include_human, with_diversity=with_diversity)[1]


def analyze_cohort_keyed(
    data_root: str | os.PathLike[str] | Path,
    cohort_id: str,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    top_k: tuple[int, ...] = (1, 5, 10),
    include_human: bool = True,
    with_diversity: bool = True,
    use_prefetch: bool = True,
) -> tuple[str, Analysis]:
    """:func:`analyze_cohort` and the content key of everything it read.

    The result comes, in this order, from the analyses recently computed in this process, from
    a child process started by :func:`~daydreaming_dagster.analysis._prefetch.start_prefetch`
    (when ``use_prefetch``), or is computed here; the first two only when their key is this one.
    """
    from ._prefetch import take_prefetched

    table = load_score_table(data_root, cohort_id, include_human=include_human)
    if table.height == 0:
        raise AnalysisInputError(f"cohort {cohort_id!r} has no parsed evaluation score yet; run the cohort first")
    inputs = None
    if with_diversity:
        from ._diversity import diversity_inputs

        inputs = diversity_inputs(data_root, cohort_id)
    key = _analysis_key(table, inputs, seed=seed, n_boot=n_boot, top_k=top_k, cohort_id=cohort_id)
    found = _RECENT_ANALYSES.get(key)
    if found is None and use_prefetch:
        found = take_prefetched(data_root, cohort_id, seed=seed, n_boot=n_boot, key=key)
    if found is None:
        diversity = None
        if inputs is not None:
            from ._diversity import diversity_from_inputs

            diversity = diversity_from_inputs(inputs)
        found = analyze_scores(table, seed=seed, n_boot=n_boot, top_k=top_k, source=f"cohort {cohort_id}",
                               diversity=diversity)
    _RECENT_ANALYSES[key] = found
    while len(_RECENT_ANALYSES) > _RECENT_ANALYSES_KEPT:
        del _RECENT_ANALYSES[next(iter(_RECENT_ANALYSES))]
    return key, found


# A results run analyses the cohort twice over the same inputs (the ``score_analysis`` asset,
# then the report it feeds): the second call reuses the first's result. The key is a hash of
# every input's content (score table, texts, target, settings), so a changed score or text is
# a different key and is analysed afresh; an Analysis is immutable, so sharing it is safe.
_RECENT_ANALYSES: dict[str, Analysis] = {}
_RECENT_ANALYSES_KEPT = 4


def forget_recent_analyses() -> None:
    """Drop the reused analyses (the next :func:`analyze_cohort` computes afresh)."""
    _RECENT_ANALYSES.clear()


def _analysis_key(table: pl.DataFrame, inputs: DiversityInputs | None, *, seed: int, n_boot: int, top_k: tuple[int, ...],
                  cohort_id: str) -> str:
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    table.write_ipc(buffer)
    digest.update(buffer.getvalue())
    parts = [cohort_id, str(seed), str(n_boot), repr(top_k)]
    parts += ["no-diversity"] if inputs is None else ["diversity", *inputs.fingerprint_parts()]
    for part in parts:
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def analysis_dir(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> Path:
    """``results/<cohort_id>/analysis/``."""
    return Paths.from_str(data_root).cohort_results_dir(cohort_id) / ANALYSIS_DIRNAME


def write_analysis(data_root: str | os.PathLike[str] | Path, cohort_id: str, analysis: Analysis) -> dict[str, Path]:
    """Write every table of ``analysis`` as ``results/<cohort>/analysis/<name>.csv`` and the
    ``--json`` object as ``summary.json`` (atomically); return name → path."""
    directory = analysis_dir(data_root, cohort_id)
    written = {name: write_csv(frame, directory / f"{name}.csv") for name, frame in analysis.tables().items()}
    summary = directory / SUMMARY_FILENAME
    _storage.atomic_write_text(summary, json.dumps(analysis.to_json(), indent=2) + "\n")
    written["summary"] = summary
    return written


def analyze_cohort_or_empty(
    data_root: str | os.PathLike[str] | Path, cohort_id: str, *, seed: int = 0, n_boot: int = DEFAULT_BOOTSTRAP
) -> Analysis:
    """:func:`analyze_cohort`, or :meth:`Analysis.empty` saying why when the cohort has no
    score to analyse yet (the report and the assets show that instead of failing)."""
    try:
        return analyze_cohort(data_root, cohort_id, seed=seed, n_boot=n_boot)
    except AnalysisInputError as exc:
        return Analysis.empty(str(exc))
