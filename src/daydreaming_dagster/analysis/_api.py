"""Entry points: analyse a score table or a cohort, write the analysis files."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from ..data_layer import Paths, _storage
from ..results.export import write_csv
from ..results.scales import scale_bounds
from . import _agreement as agreement
from ._dstudy import design_advice
from ._essay_model import EssayModelFit, fit_essay_model
from ._estimates import percentile_ci
from ._humans import human_panel
from ._judges import judge_diagnostics
from ._levels import level_outcome
from ._model import (
    CONTENDER_FROM,
    TIE_BELOW,
    Analysis,
    Diversity,
    EssayResult,
    EvaluatorResult,
    TopTie,
    VarianceShare,
)
from ._table import (
    DRAFT_COLUMN,
    AnalysisInputError,
    PreparedScores,
    load_score_table,
    prepare_scores,
    split_humans,
)
from ._tournament import analyze_tournament
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
    include_humans: bool = False,
    target_width: float | None = None,
    essay_lengths: Mapping[str, int] | None = None,
) -> Analysis:
    """Analyse a long score table (``essay_gen_id, evaluator, score[, scale][, draft_gen_id]``
    plus factors); docs/analysis.md says what every number estimates.

    Essay means, their intervals and P(top k) come from the evaluator-adjusted essay model;
    level means and differences from the design's model (drafts as units when
    ``draft_gen_id`` is given), differences with simultaneous intervals per factor; variance
    shares and alpha with a cluster bootstrap over drafts (or essays). ``human/…`` evaluators
    are a panel of their own unless ``include_humans``. ``target_width`` (an essay-interval
    half-width) asks the design advice for the cheapest design reaching it. Deterministic for
    ``seed``. Raises :class:`AnalysisInputError` for a table that cannot be analysed.
    """
    if n_boot < 1:
        raise AnalysisInputError(f"bootstrap resamples must be at least 1, got {n_boot}")
    if target_width is not None and not target_width > 0:
        raise AnalysisInputError(f"--target-width must be a positive half-width, got {target_width}")
    ks = tuple(sorted({int(k) for k in top_k if int(k) >= 1}))
    notes: list[str] = []
    human_scores: PreparedScores | None = None
    if isinstance(table, PreparedScores):
        scores = table
    else:
        llm_rows, human_rows = split_humans(table)
        if llm_rows.height == 0 and human_rows.height:
            notes.append("only human ratings: they are analysed as the evaluators")
            llm_rows, human_rows = human_rows, human_rows.clear()
        scores = prepare_scores(table if include_humans and human_rows.height else llm_rows, source)
        if human_rows.height:
            human_scores = prepare_scores(human_rows, f"{source} (human ratings)")
            llm_scores = prepare_scores(llm_rows, source) if include_humans else scores
    seeds = np.random.SeedSequence(seed).spawn(5)
    streams = [np.random.default_rng(s) for s in seeds]
    if scores.normalised:
        notes.append(f"scores on different scales ({', '.join(scores.source_scales)}) were normalised to 0-1 "
                     "before they were combined; means and CIs are on 0-1")
    if scores.n_essays == 1:
        notes.append("one essay: no level comparison, ranking or agreement across essays is possible")

    fit = fit_essay_model(scores)
    essays = _essay_results(scores, fit, ks, n_boot, streams[1])
    outcome = level_outcome(scores, fit, streams[2])
    notes.extend(outcome.notes)
    weights = _weight_chunks(scores, n_boot, seeds[0])
    variance = _variance_shares(scores, fit, weights, notes)
    matrix = agreement.evaluator_matrix(scores)
    alpha = agreement.alpha_with_ci(matrix, weights)
    if alpha.reason:
        notes.append(f"evaluator agreement {alpha.reason}")
    top_tie = _top_tie(essays, ks, scores.n_essays)
    if top_tie.reason:
        notes.append(f"ranking stability {top_tie.reason}")
    humans = None
    if human_scores is not None:
        # The panel is always compared with the LLM evaluators alone (pooled or not).
        humans = human_panel(human_scores, llm_scores, fit if llm_scores is scores else fit_essay_model(llm_scores))
    judges = judge_diagnostics(scores, fit, essay_lengths)
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
        levels=outcome.levels,
        differences=outcome.differences,
        variance=variance,
        alpha=alpha.alpha,
        alpha_ci=alpha.ci,
        alpha_note=alpha.reason,
        evaluators=_evaluator_results(scores, matrix, fit),
        pairwise=tuple(agreement.pairwise_spearman(matrix, scores.evaluators)),
        human_vs_llm=humans.human_vs_llm if humans else tuple(agreement.human_llm_rows(scores, matrix)),
        top_tie=top_tie,
        diversity=diversity,
        notes=tuple(notes),
        design=outcome.design,
        essay_model=_essay_model_summary(fit),
        humans=humans,
        include_humans=include_humans,
        design_advice=design_advice(fit, target_width),
        judges=judges,
        generation_axes=scores.essay_factors,
    )


@dataclass(frozen=True)
class _WeightChunks:
    """Cluster-bootstrap weights (resample × essay), regenerated chunk by chunk on each pass:
    units (drafts when the table has ``draft_gen_id``, else essays) are drawn with replacement
    and every essay of a drawn unit gets its unit's count. Each chunk has its own seed, so
    every pass sees the same resamples and no pass holds more than one chunk (100,000 essays
    × 1,000 resamples would be 400 MB at once)."""

    unit_of_essay: np.ndarray
    n_units: int
    sizes: tuple[int, ...]
    seeds: tuple[np.random.SeedSequence, ...]

    def __iter__(self) -> Iterator[np.ndarray]:
        for size, seed in zip(self.sizes, self.seeds, strict=True):
            rng = np.random.default_rng(seed)
            units = rng.multinomial(self.n_units, np.full(self.n_units, 1.0 / self.n_units), size=size)
            yield units.astype(np.float64)[:, self.unit_of_essay]


def _weight_chunks(scores: PreparedScores, n_boot: int, seed: np.random.SeedSequence) -> _WeightChunks:
    if DRAFT_COLUMN in scores.frame.columns:
        _, unit_of_essay = np.unique(np.asarray(scores.essay_levels(DRAFT_COLUMN), dtype=str), return_inverse=True)
    else:
        unit_of_essay = np.arange(scores.n_essays)
    unit_of_essay = unit_of_essay.ravel()
    n_units = int(unit_of_essay.max()) + 1 if unit_of_essay.size else 0
    rows = max(1, min(n_boot, _WEIGHT_CELLS // max(1, scores.n_essays)))
    sizes = tuple(min(rows, n_boot - done) for done in range(0, n_boot, rows))
    return _WeightChunks(unit_of_essay, n_units, sizes, tuple(seed.spawn(len(sizes))))


_WEIGHT_CELLS = 2_000_000  # resamples × essays per chunk: 16 MB per dense array of a chunk


def _essay_model_summary(fit: EssayModelFit) -> dict[str, object]:
    return {"residual_sd": _float(fit.residual_sd), "df": fit.df_resid, "connected_parts": fit.n_parts,
            "replicate_variance": fit.replicate_var, "disagreement_variance": fit.interaction_var,
            "mean_replicates": fit.mean_replicates}


def _top_tie(essays: tuple[EssayResult, ...], ks: tuple[int, ...], n_essays: int) -> TopTie:
    """Whether the top of the ranking is a statistical tie, and the essays contending for it."""
    if essays and 1 in ks and essays[0].p_top.get(1) is None:
        return TopTie(is_tie=False, contenders=(),
                      reason="not computable: the essay model has no residual degrees of freedom, so the spread of "
                             "a score is unknown")
    first = {e.essay_gen_id: (e.p_top.get(1) or 0.0) for e in essays}
    contenders = tuple((e, p) for e, p in sorted(first.items(), key=lambda item: -item[1]) if p >= CONTENDER_FROM)
    best = max(first.values(), default=0.0)
    return TopTie(is_tie=n_essays > 1 and 1 in ks and best < TIE_BELOW, contenders=contenders)


def _essay_results(
    scores: PreparedScores, fit: EssayModelFit, ks: tuple[int, ...], n_boot: int, rng: np.random.Generator
) -> tuple[EssayResult, ...]:
    """Evaluator-adjusted essay means with model t intervals (clipped to the scale) and P(top k),
    best first."""
    low_bound, high_bound = scale_bounds(scores.scale) if scores.scale else (-np.inf, np.inf)
    # The true mean lies on the scale: clipping the interval to it never loses coverage.
    low, high = np.clip(fit.ci_low, low_bound, high_bound), np.clip(fit.ci_high, low_bound, high_bound)
    p_top = fit.top_k_probabilities(ks, n_boot, rng) if scores.n_essays > 1 else {k: np.ones(1) for k in ks}
    raw = np.bincount(scores.essay_index, weights=scores.y, minlength=scores.n_essays) / fit.n_scores
    order = sorted(range(scores.n_essays), key=lambda i: (-fit.means[i], -fit.n_scores[i], scores.essays[i]))
    note = None if fit.df_resid >= 1 else "too few to say"
    return tuple(
        EssayResult(scores.essays[i], float(fit.means[i]), _float(low[i]), _float(high[i]), int(fit.n_scores[i]),
                    {k: (float(p_top[k][i]) if p_top is not None else None) for k in ks}, float(raw[i]),
                    int(fit.n_evaluators[i]), note)
        for i in order
    )


def _evaluator_results(scores: PreparedScores, matrix: np.ndarray, fit: EssayModelFit) -> tuple[EvaluatorResult, ...]:
    """Per evaluator: n, mean, offset, leave-one-out consensus correlation with its interval (the
    flag fires only when the whole interval is below the threshold), self-consistency."""
    consensus = agreement.consensus_correlations(matrix)
    consistency = agreement.self_consistency(scores)
    n_per = np.bincount(scores.evaluator_index, minlength=len(scores.evaluators))
    mean_per = np.bincount(scores.evaluator_index, weights=scores.y, minlength=len(scores.evaluators)) / n_per
    out = []
    for j, name in enumerate(scores.evaluators):
        rho, n = consensus[j]
        low, high = agreement.spearman_interval(rho, n)
        icc_ci = consistency[j].icc_ci
        out.append(EvaluatorResult(name, int(n_per[j]), float(mean_per[j]), rho, n, agreement.weak_agreement(high),
                                   consistency[j].n_repeated, consistency[j].replicate_sd, consistency[j].icc,
                                   float(fit.offsets[j]), low, high,
                                   icc_ci[0] if icc_ci else None, icc_ci[1] if icc_ci else None))
    return tuple(out)


def _variance_shares(scores: PreparedScores, fit: EssayModelFit, weights: _WeightChunks,
                     notes: list[str]) -> tuple[VarianceShare, ...]:
    if scores.n_essays < 2:
        return ()
    components, raw_draws = None, []
    for chunk in weights:
        part = variance_components(scores, chunk, fit.means, fit.offsets)
        components = components or part
        raw_draws.append(part.raw_draws)
    assert components is not None
    raw_draws = np.vstack(raw_draws)
    notes.extend(f"variance: {n}" for n in components.notes)
    shares = components.shares
    # Bias-corrected percentile interval on the untruncated estimates, clipped to [0, 1]:
    # resampling units with replacement inflates every between-unit sum of squares, so the
    # draws sit above the estimate by about the noise term; shifting them back by their mean
    # excess (Efron & Tibshirani 1993, section 10.6) removes that. Untruncated, a null axis's
    # interval reaches 0 without collapsing to [0, 0].
    raw = components.raw_shares
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = raw_draws / np.maximum(raw_draws, 0.0).sum(axis=1, keepdims=True)
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
    """For each ``human/<rater>`` evaluator: Spearman correlation (with its interval) and n
    against each LLM evaluator and against the LLM consensus (the evaluator-adjusted essay
    means). Cheap: no resampling. Empty when the table has no rows, no human or no LLM scores."""
    llm_rows, human_rows = split_humans(table)
    if llm_rows.height == 0 or human_rows.height == 0:
        return []
    llm = prepare_scores(llm_rows)
    return list(human_panel(prepare_scores(human_rows), llm, fit_essay_model(llm)).human_vs_llm)


def analyze_cohort(
    data_root: str | os.PathLike[str] | Path,
    cohort_id: str,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    top_k: tuple[int, ...] = (1, 5, 10),
    include_humans: bool = False,
    with_diversity: bool = True,
    target_width: float | None = None,
) -> Analysis:
    """:func:`analyze_scores` over :func:`load_score_table` of the cohort, plus text diversity
    (near-duplicate clusters of essays and drafts, similarity to the spec's target text).

    Raises :class:`AnalysisInputError` when the cohort has no parsed score yet and
    :class:`~daydreaming_dagster.results.cohort.CohortNotFoundError` for an unknown cohort.
    """
    return analyze_cohort_keyed(data_root, cohort_id, seed=seed, n_boot=n_boot, top_k=top_k,
                                include_humans=include_humans, with_diversity=with_diversity,
                                target_width=target_width)[1]


def analyze_cohort_keyed(
    data_root: str | os.PathLike[str] | Path,
    cohort_id: str,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    top_k: tuple[int, ...] = (1, 5, 10),
    include_humans: bool = False,
    with_diversity: bool = True,
    use_prefetch: bool = True,
    target_width: float | None = None,
) -> tuple[str, Analysis]:
    """:func:`analyze_cohort` and the content key of everything it read.

    The result comes, in this order, from the analyses recently computed in this process, from
    a child process started by :func:`~daydreaming_dagster.analysis._prefetch.start_prefetch`
    (when ``use_prefetch``), or is computed here; the first two only when their key is this one.
    """
    from ._prefetch import take_prefetched

    table = load_score_table(data_root, cohort_id, include_human=True)
    verdicts, skipped = cohort_verdicts(data_root, cohort_id)
    no_scores = f"cohort {cohort_id!r} has no parsed evaluation score yet; run the cohort first"
    if table.height == 0 and verdicts.height == 0:
        raise AnalysisInputError(no_scores)
    inputs = None
    if with_diversity and table.height:
        from ._diversity import diversity_inputs

        inputs = diversity_inputs(data_root, cohort_id)
    key = _analysis_key(table, inputs, seed=seed, n_boot=n_boot, top_k=top_k, cohort_id=cohort_id,
                        options=f"humans={include_humans};width={target_width};skipped={skipped}", verdicts=verdicts)
    found = _RECENT_ANALYSES.get(key)
    if found is None and use_prefetch:
        found = take_prefetched(data_root, cohort_id, seed=seed, n_boot=n_boot, key=key)
    if found is None:
        if table.height:
            diversity = None
            if inputs is not None:
                from ._diversity import diversity_from_inputs

                diversity = diversity_from_inputs(inputs)
            lengths = inputs.essay_lengths() if inputs is not None else None
            found = analyze_scores(table, seed=seed, n_boot=n_boot, top_k=top_k, source=f"cohort {cohort_id}",
                                   diversity=diversity, include_humans=include_humans, target_width=target_width,
                                   essay_lengths=lengths)
        else:  # a tournament without evaluations: only the tournament
            found = dataclasses.replace(Analysis.empty(no_scores), seed=seed, n_boot=n_boot)
        means = {e.essay_gen_id: e.mean for e in found.essays} or None
        tournament = analyze_tournament(verdicts, score_means=means, include_humans=include_humans, seed=seed,
                                        n_boot=n_boot, skipped=skipped)
        found = dataclasses.replace(found, tournament=tournament)
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


def cohort_verdicts(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> tuple[pl.DataFrame, int]:
    """The cohort's comparison verdicts (LLM judges, then ``human:<rater>``) and the number of
    comparisons left out (failed or unparsed)."""
    from ..results.comparisons import human_comparison_verdicts, load_comparisons

    loaded = load_comparisons(data_root, cohort_id)
    humans = human_comparison_verdicts(data_root, cohort_id)
    return pl.concat([loaded.verdicts, humans]), loaded.n_skipped


def _analysis_key(table: pl.DataFrame, inputs: DiversityInputs | None, *, seed: int, n_boot: int, top_k: tuple[int, ...],
                  cohort_id: str, options: str = "", verdicts: pl.DataFrame | None = None) -> str:
    digest = hashlib.sha256()
    for frame in (table, verdicts):
        if frame is None:
            continue
        buffer = io.BytesIO()
        frame.write_ipc(buffer)
        digest.update(buffer.getvalue())
    parts = [cohort_id, str(seed), str(n_boot), repr(top_k), options]
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
