"""The analysis result: frozen records, their JSON form and their tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from ._agreement import HumanLlmAgreement, PairwiseAgreement

if TYPE_CHECKING:
    from ._dstudy import DesignAdvice
    from ._humans import HumanPanel
    from ._levels import DesignSummary

__all__ = [
    "Analysis",
    "ClusterRow",
    "Diversity",
    "EssayResult",
    "EvaluatorResult",
    "LevelDifference",
    "LevelResult",
    "TopTie",
    "VarianceShare",
]

TIE_BELOW = 0.95
"""The top of the ranking is a statistical tie when no essay is first in at least this share
of the resamples."""
CONTENDER_FROM = 0.05
"""Essays first in at least this share of resamples are listed as contenders for the top."""


def _num(value: float | None) -> float | None:
    """JSON-safe float: NaN and infinities become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class EssayResult:
    essay_gen_id: str
    mean: float
    """Evaluator-adjusted mean: the essay's expected score over the evaluator panel."""
    ci_low: float | None
    """95% t interval of the mean from the essay + evaluator model (``None``: too few to say)."""
    ci_high: float | None
    n: int
    """Scores of the essay."""
    p_top: dict[int, float | None]
    """k → probability of being in the top k in draws from the fitted essay model (None: not computable)."""
    raw_mean: float | None = None
    """Plain mean of its scores (offsets of the evaluators who happened to score it included)."""
    n_evaluators: int = 0
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"essay_gen_id": self.essay_gen_id, "mean": _num(self.mean), "ci_low": _num(self.ci_low),
                "ci_high": _num(self.ci_high), "n": self.n, "raw_mean": _num(self.raw_mean),
                "n_evaluators": self.n_evaluators, "note": self.note,
                **{f"p_top_{k}": _num(p) for k, p in sorted(self.p_top.items())}}


@dataclass(frozen=True)
class LevelResult:
    factor: str
    level: str
    mean: float
    """Expected score of a new draft of this level (see docs/analysis.md, "Estimand")."""
    ci_low: float | None
    """95% t interval from the design's model (``None``: too few to say)."""
    ci_high: float | None
    n: int
    """Scores at this level."""
    n_essays: int
    n_units: int = 0
    """Drafts (or essays, without draft ids) at this level: what the interval rests on."""
    n_evaluators: int = 0
    """Evaluators behind an evaluator-level axis's level."""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "mean": _num(self.mean), "ci_low": _num(self.ci_low),
                "ci_high": _num(self.ci_high), "n": self.n, "n_essays": self.n_essays, "n_units": self.n_units,
                "n_evaluators": self.n_evaluators, "note": self.note}


@dataclass(frozen=True)
class LevelDifference:
    factor: str
    level_a: str
    level_b: str
    difference: float
    """Mean of ``level_a`` minus mean of ``level_b``."""
    ci_low: float | None
    """Simultaneous 95% interval over the factor's family of comparisons."""
    ci_high: float | None
    ci_low_unadjusted: float | None = None
    """The interval of this comparison alone (not adjusted for the family)."""
    ci_high_unadjusted: float | None = None
    method: str = ""
    """How the family was adjusted (``max-|t|``, ``Bonferroni (paired within drafts)``)."""
    family_size: int = 1
    """Comparisons in the family the interval is adjusted for."""
    note: str | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 0 or self.ci_high < 0)

    def to_dict(self) -> dict[str, Any]:
        return {"factor": self.factor, "level_a": self.level_a, "level_b": self.level_b,
                "difference": _num(self.difference), "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high),
                "ci_low_unadjusted": _num(self.ci_low_unadjusted), "ci_high_unadjusted": _num(self.ci_high_unadjusted),
                "method": self.method, "family_size": self.family_size, "note": self.note}


@dataclass(frozen=True)
class VarianceShare:
    component: str
    """A factor column, ``essay``, ``evaluator`` or ``residual``."""
    unit: str
    """What it varies over: ``essay``, ``evaluator`` or ``score``."""
    variance: float
    share: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "unit": self.unit, "variance": _num(self.variance),
                "share": _num(self.share), "share_ci": [_num(self.ci_low), _num(self.ci_high)]}


@dataclass(frozen=True)
class EvaluatorResult:
    evaluator: str
    n: int
    """Scores it gave."""
    mean: float
    corr_with_consensus: float | None
    """Spearman correlation with the mean of the other evaluators per essay."""
    consensus_n: int
    """Essays that correlation uses."""
    flagged: bool
    """The whole interval of that correlation lies below ``FLAG_BELOW``."""
    n_repeated: int
    replicate_sd: float | None
    icc: float | None
    offset: float | None = None
    """Calibration offset: how much higher than the panel average it scores the same essay."""
    corr_ci_low: float | None = None
    corr_ci_high: float | None = None
    icc_ci_low: float | None = None
    icc_ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"evaluator": self.evaluator, "n": self.n, "mean": _num(self.mean), "offset": _num(self.offset),
                "corr_with_consensus": _num(self.corr_with_consensus), "corr_ci_low": _num(self.corr_ci_low),
                "corr_ci_high": _num(self.corr_ci_high), "consensus_n": self.consensus_n,
                "flagged": self.flagged, "n_repeated": self.n_repeated,
                "replicate_sd": _num(self.replicate_sd), "icc": _num(self.icc),
                "icc_ci_low": _num(self.icc_ci_low), "icc_ci_high": _num(self.icc_ci_high)}


@dataclass(frozen=True)
class TopTie:
    is_tie: bool
    """No essay is first in at least ``TIE_BELOW`` of the resamples."""
    contenders: tuple[tuple[str, float], ...]
    """(essay, P(first)) for essays first in at least ``CONTENDER_FROM`` of the resamples."""
    reason: str | None = None
    """Why ranking stability could not be computed (None when it was)."""

    def sentence(self) -> str:
        if self.reason:
            return f"Ranking stability {self.reason}."
        if not self.contenders:
            return "No essay has a score."
        listed = ", ".join(f"{e} (P(first) = {p:.2f})" for e, p in self.contenders)
        if self.is_tie:
            return (f"The top of the ranking is a statistical tie: no essay is first in {TIE_BELOW:.0%} of "
                    f"draws of the fitted essay model; contenders: {listed}.")
        return f"The top essay is clear: {listed}."


@dataclass(frozen=True)
class ClusterRow:
    kind: str
    """``essay`` or ``draft``."""
    gen_id: str
    cluster: int
    """Near-duplicate cluster number (1 = largest); singletons have their own number."""
    cluster_size: int
    target_similarity: float | None = None


@dataclass(frozen=True)
class Diversity:
    method: str
    threshold: float
    """Cosine similarity at or above which two texts are near-duplicates (linked)."""
    clusters: tuple[ClusterRow, ...]
    by_level: pl.DataFrame
    """kind, factor, level, n, n_clusters, mean_pairwise_distance."""
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        essays = [c for c in self.clusters if c.kind == "essay"]
        drafts = [c for c in self.clusters if c.kind == "draft"]
        return {
            "method": self.method, "threshold": self.threshold, "target": self.target,
            "essay_clusters": len({c.cluster for c in essays}), "essays": len(essays),
            "draft_clusters": len({c.cluster for c in drafts}), "drafts": len(drafts),
            "by_level": [{k: (_num(v) if isinstance(v, float) else v) for k, v in row.items()}
                         for row in self.by_level.iter_rows(named=True)],
        }


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`analyze_scores` found. Means and CIs are on :attr:`scale` (the
    scores' own scale, or 0-1 when scales differed and were normalised)."""

    n_essays: int
    n_scores: int
    scale: str | None
    normalised: bool
    source_scales: tuple[str, ...]
    seed: int
    n_boot: int
    top_k: tuple[int, ...]
    essays: tuple[EssayResult, ...]
    """Best mean first."""
    levels: tuple[LevelResult, ...]
    differences: tuple[LevelDifference, ...]
    variance: tuple[VarianceShare, ...]
    alpha: float | None
    alpha_ci: tuple[float, float] | None
    alpha_note: str | None
    evaluators: tuple[EvaluatorResult, ...]
    pairwise: tuple[PairwiseAgreement, ...]
    human_vs_llm: tuple[HumanLlmAgreement, ...]
    top_tie: TopTie
    diversity: Diversity | None = None
    notes: tuple[str, ...] = field(default=())
    design: DesignSummary | None = None
    """What the level intervals treat as the unit and which model they use."""
    essay_model: dict[str, Any] | None = None
    """The evaluator-adjusted essay model: residual sd, df, connected parts, replicate split."""
    humans: HumanPanel | None = None
    """Human raters as their own panel (None without human scores)."""
    include_humans: bool = False
    """True when human scores were pooled into the LLM statistics (``--include-humans``)."""
    design_advice: DesignAdvice | None = None
    judges: Any = None
    """Judge diagnostics (self-preference, length bias, scale use), when computed."""
    generation_axes: tuple[str, ...] = ()
    """Essay-level (generation) axes; the others are evaluation axes (calibration)."""
    tournament: Any = None
    """The pairwise tournament (:class:`~._tournament.Tournament`); None without comparisons."""

    @classmethod
    def empty(cls, note: str) -> Analysis:
        """An analysis of nothing (no scores yet): every table empty, ``note`` says why."""
        return cls(0, 0, None, False, (), 0, 0, (1, 5, 10), (), (), (), (), None, None, note, (), (), (),
                   TopTie(False, ()), None, (note,))

    @property
    def factors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(level.factor for level in self.levels))

    @property
    def top_factor(self) -> VarianceShare | None:
        """The generation axis with the largest variance share among those whose share interval
        excludes 0; ``None`` when no axis stands out (evaluation axes are calibration, never
        the top factor)."""
        axes = [v for v in self.variance if v.component in self.generation_axes and v.share is not None
                and v.ci_low is not None and v.ci_low > 0]
        return max(axes, key=lambda v: v.share or 0.0, default=None)

    @property
    def top_factor_sentence(self) -> str:
        top = self.top_factor
        if top is None:
            return ("No generation axis stands out: no axis's share of the variance has an interval that "
                    "excludes 0.")
        return (f"The generation axis that matters most is {top.component}: {top.share:.0%} of the score variance "
                f"(95% CI {top.ci_low:.0%} to {top.ci_high:.0%}).")

    def variance_of(self, component: str) -> VarianceShare | None:
        return next((v for v in self.variance if v.component == component), None)

    def to_json(self) -> dict[str, Any]:
        """The ``daydream analyze --json`` object (see docs/analysis.md)."""
        factors: dict[str, Any] = {}
        for factor in self.factors:
            share = self.variance_of(factor)
            factors[factor] = {
                "levels": [lv.to_dict() for lv in self.levels if lv.factor == factor],
                "variance_share": _num(share.share) if share else None,
                "variance_share_ci": [_num(share.ci_low), _num(share.ci_high)] if share else [None, None],
                "differences": [d.to_dict() for d in self.differences if d.factor == factor],
            }
        top = self.top_factor
        for factor, entry in factors.items():
            diffs = [d for d in self.differences if d.factor == factor]
            entry["axis"] = "generation" if factor in self.generation_axes else "evaluation (calibration)"
            entry["comparisons_adjusted"] = max((d.family_size for d in diffs), default=0)
            entry["adjustment"] = diffs[0].method if diffs else None
        return {
            "n_essays": self.n_essays,
            "n_scores": self.n_scores,
            "scale": self.scale,
            "normalised": self.normalised,
            "source_scales": list(self.source_scales),
            "seed": self.seed,
            "n_boot": self.n_boot,
            "essays": [e.to_dict() for e in self.essays],
            "factors": factors,
            "variance": [v.to_dict() for v in self.variance],
            "top_factor": top.component if top else None,
            "top_factor_sentence": self.top_factor_sentence,
            "include_humans": self.include_humans,
            "design": self.design.to_dict() if self.design else None,
            "essay_model": self.essay_model,
            "humans": self.humans.to_dict() if self.humans else None,
            "design_advice": self.design_advice.to_dict() if self.design_advice else None,
            "judges": self.judges.to_dict() if self.judges is not None else None,
            "top_tie": {"is_tie": self.top_tie.is_tie, "not_computable": self.top_tie.reason,
                        "contenders": [{"essay_gen_id": e, "p_top_1": p} for e, p in self.top_tie.contenders]},
            "evaluators": {
                "alpha": _num(self.alpha),
                "alpha_ci": [_num(self.alpha_ci[0]), _num(self.alpha_ci[1])] if self.alpha_ci else None,
                "alpha_note": self.alpha_note,
                "per_evaluator": [e.to_dict() for e in self.evaluators],
                "pairwise": [{"a": p.a, "b": p.b, "spearman": _num(p.spearman), "n": p.n, "ci_low": _num(p.ci_low),
                              "ci_high": _num(p.ci_high)} for p in self.pairwise],
                "human_vs_llm": [h.to_dict() for h in self.human_vs_llm],
            },
            "diversity": self.diversity.to_dict() if self.diversity else None,
            "tournament": self.tournament.to_dict() if self.tournament is not None else None,
            "notes": list(self.notes),
        }

    # -- tables (CSV, DuckDB) ------------------------------------------------------------
    def essays_frame(self) -> pl.DataFrame:
        ks = self.top_k
        rows = [{"essay_gen_id": e.essay_gen_id, "mean": e.mean, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": e.n,
                 **{f"p_top_{k}": e.p_top.get(k) for k in ks}, "raw_mean": e.raw_mean,
                 "n_evaluators": e.n_evaluators} for e in self.essays]
        schema = {"essay_gen_id": pl.String, "mean": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
                  "n": pl.Int64, **{f"p_top_{k}": pl.Float64 for k in ks}, "raw_mean": pl.Float64,
                  "n_evaluators": pl.Int64}
        return pl.DataFrame(rows, schema=schema)

    def levels_frame(self) -> pl.DataFrame:
        schema = {"factor": pl.String, "level": pl.String, "mean": pl.Float64, "ci_low": pl.Float64,
                  "ci_high": pl.Float64, "n": pl.Int64, "n_essays": pl.Int64, "n_units": pl.Int64,
                  "n_evaluators": pl.Int64, "note": pl.String}
        return pl.DataFrame([{"factor": lv.factor, **lv.to_dict()} for lv in self.levels], schema=schema)

    def differences_frame(self) -> pl.DataFrame:
        schema = {"factor": pl.String, "level_a": pl.String, "level_b": pl.String, "difference": pl.Float64,
                  "ci_low": pl.Float64, "ci_high": pl.Float64, "ci_low_unadjusted": pl.Float64,
                  "ci_high_unadjusted": pl.Float64, "method": pl.String, "family_size": pl.Int64, "note": pl.String}
        return pl.DataFrame([d.to_dict() for d in self.differences], schema=schema)

    def variance_frame(self) -> pl.DataFrame:
        schema = {"component": pl.String, "unit": pl.String, "variance": pl.Float64, "share": pl.Float64,
                  "ci_low": pl.Float64, "ci_high": pl.Float64}
        rows = [{"component": v.component, "unit": v.unit, "variance": v.variance, "share": v.share,
                 "ci_low": v.ci_low, "ci_high": v.ci_high} for v in self.variance]
        return pl.DataFrame(rows, schema=schema)

    def evaluators_frame(self) -> pl.DataFrame:
        schema = {"evaluator": pl.String, "n": pl.Int64, "mean": pl.Float64, "offset": pl.Float64,
                  "corr_with_consensus": pl.Float64, "corr_ci_low": pl.Float64, "corr_ci_high": pl.Float64,
                  "consensus_n": pl.Int64, "flagged": pl.Boolean, "n_repeated": pl.Int64,
                  "replicate_sd": pl.Float64, "icc": pl.Float64, "icc_ci_low": pl.Float64, "icc_ci_high": pl.Float64}
        return pl.DataFrame([e.to_dict() for e in self.evaluators], schema=schema)

    def pairwise_frame(self) -> pl.DataFrame:
        schema = {"a": pl.String, "b": pl.String, "spearman": pl.Float64, "n": pl.Int64, "ci_low": pl.Float64,
                  "ci_high": pl.Float64}
        return pl.DataFrame([{"a": p.a, "b": p.b, "spearman": _num(p.spearman), "n": p.n, "ci_low": _num(p.ci_low),
                              "ci_high": _num(p.ci_high)} for p in self.pairwise], schema=schema)

    def human_vs_llm_frame(self) -> pl.DataFrame:
        schema = {"human_evaluator": pl.String, "llm_evaluator": pl.String, "spearman": pl.Float64, "n": pl.Int64,
                  "ci_low": pl.Float64, "ci_high": pl.Float64}
        return pl.DataFrame([h.to_dict() for h in self.human_vs_llm], schema=schema)

    def clusters_frame(self) -> pl.DataFrame:
        schema = {"kind": pl.String, "gen_id": pl.String, "cluster": pl.Int64, "cluster_size": pl.Int64,
                  "target_similarity": pl.Float64}
        rows = [vars(c) for c in self.diversity.clusters] if self.diversity else []
        return pl.DataFrame(rows, schema=schema)

    def diversity_frame(self) -> pl.DataFrame:
        schema = {"kind": pl.String, "factor": pl.String, "level": pl.String, "n": pl.Int64,
                  "n_clusters": pl.Int64, "mean_pairwise_distance": pl.Float64}
        return self.diversity.by_level.cast(schema) if self.diversity else pl.DataFrame(schema=schema)

    def tables(self) -> dict[str, pl.DataFrame]:
        """Every table by name (the CSV file stem and the DuckDB asset)."""
        return {
            "essays": self.essays_frame(),
            "levels": self.levels_frame(),
            "differences": self.differences_frame(),
            "variance": self.variance_frame(),
            "evaluators": self.evaluators_frame(),
            "pairwise": self.pairwise_frame(),
            "human_vs_llm": self.human_vs_llm_frame(),
            "clusters": self.clusters_frame(),
            "diversity": self.diversity_frame(),
            **self.judge_frames(),
            **self.tournament_frames(),
        }

    def tournament_frames(self) -> dict[str, pl.DataFrame]:
        from ._tournament import tournament_tables

        return tournament_tables(self.tournament)

    def judge_frames(self) -> dict[str, pl.DataFrame]:
        from ._judges import JudgeDiagnostics

        return self.judges.tables() if self.judges is not None else JudgeDiagnostics.empty_tables()
