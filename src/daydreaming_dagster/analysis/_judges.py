"""Judge diagnostics: does an LLM judge favour its own model, longer essays, or the top of the scale?

Three checks the LLM-as-judge literature expects, each with a 95% interval and a sentence that
claims only what the interval supports:

- **Self-preference** (Panickssery et al. 2024, "LLM evaluators recognize and favor their own
  generations"): the extra score an evaluator gives to essays its own model wrote, over what
  the essay's quality (its essay effect) and the evaluator's calibration (its offset) explain.
  Model, for score ``r`` of essay ``e`` by evaluator ``j``::

      y_ejr = a_e + b_j + δ_m · own_ej + eps_ejr

  with ``own_ej = 1`` when the evaluator's model ``m`` (``evaluation_llm``) wrote the essay
  (``essay_llm``; for a copy-mode essay, the draft's ``draft_llm``). ``δ`` is estimated by
  Frisch–Waugh–Lovell: the indicator columns and the scores are both projected off the essay
  and evaluator effects (:func:`~._essay_model.project_out`, the essay model's exact solver),
  and the score residuals are regressed on the indicator residuals; the t interval uses that
  regression's residual variance and degrees of freedom. One pooled ``δ`` (every model alike)
  and one per evaluation model, fitted jointly; the per-model intervals are simultaneous
  (Bonferroni over the models). ``δ`` is identified only when some evaluator scores both
  essays its model wrote and essays other models wrote; otherwise "not in this design".
- **Length bias** (Dubois et al. 2024, length-controlled AlpacaEval): within each essay
  template, the OLS slope of the evaluator-adjusted essay mean on essay length (per 100
  words), with a t interval (simultaneous over templates, Bonferroni), and a length-controlled
  essay score ``mean - slope · (length - template mean length) / 100``. A slope is an
  association: longer essays may also be better essays, so it is not proof that a judge
  rewards length for its own sake. Under :data:`MIN_ESSAYS_FOR_SLOPE` essays in a template:
  "too few to say".
- **Scale use**: per evaluator, the share of its scores at the scale's ceiling and at its
  floor, with a Wilson 95% interval (Wilson 1927). A judge that gives the top score to most
  essays cannot tell the best ones apart. Skipped, with the reason, when no scale is known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtri, stdtrit

from ..results.scales import scale_bounds
from ._essay_model import EssayModelFit, project_out
from ._levels import TOO_FEW
from ._model import _num
from ._table import COPY_LEVEL, HUMAN_LEVEL, NO_LEVEL, PreparedScores

__all__ = [
    "HEAVY_SHARE",
    "MIN_ESSAYS_FOR_SLOPE",
    "JudgeDiagnostics",
    "LengthBias",
    "LengthControlledEssay",
    "ScaleUse",
    "SelfPreference",
    "judge_diagnostics",
]

CONFIDENCE = 0.95
NOT_IN_DESIGN = "not in this design"
POOLED = "(all models)"
"""The ``evaluation_llm`` of the pooled self-preference row."""
MIN_ESSAYS_FOR_SLOPE = 4
"""Fewest essays with a known length in a template for a length slope (below: too few to say)."""
WORDS_PER_UNIT = 100
"""Length slopes are per this many words."""
HEAVY_SHARE = 0.25
"""A judge is said to crowd an end of the scale only when the interval of its share of scores
there lies wholly above this: a quarter of all scores on one value leaves little room to rank."""
_IDENTIFIED = 1e-9
"""Share of an indicator's sum of squares that must survive projection for it to be estimable."""
ALL_TEMPLATES = "(all)"
"""The essay template of the length check when the table has no ``essay_template`` column."""


def _fmt(value: float, digits: int = 2) -> str:
    """A number for a sentence, with a real minus sign (and none on a rounded zero)."""
    text = f"{value:.{digits}f}"
    if not text.startswith("-"):
        return text
    return "\u2212" + text[1:] if float(text) != 0 else text[1:]


def _ci_text(low: float, high: float, family: int = 1, over: str = "") -> str:
    """``95% CI a to b``, saying when the interval is simultaneous over a family."""
    text = f"95% CI {_fmt(low)} to {_fmt(high)}"
    return text if family <= 1 else f"{text}, simultaneous over {family} {over}"


def _t(df: int, alpha: float) -> float:
    return float(stdtrit(df, 1 - alpha / 2)) if df >= 1 else float("nan")


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelfPreference:
    """Extra score an evaluation model gives essays it wrote (see the module docstring)."""

    evaluation_llm: str
    """The judging model, or :data:`POOLED` for one effect common to every model."""
    estimate: float | None
    """``δ``: extra score on own-model essays, in score units (``None``: not estimable)."""
    ci_low: float | None
    """95% t interval (simultaneous over the models for the per-model rows; ``None``: not estimable)."""
    ci_high: float | None
    n_own: int
    """Scores this model's evaluators gave essays it wrote."""
    n_other: int
    """Scores this model's evaluators gave essays other models wrote."""
    n_evaluators: int
    """Evaluators of this model that scored both own and other essays (what the estimate rests on)."""
    family_size: int
    """Intervals this one is adjusted with (1 for the pooled row)."""
    note: str | None = None
    """Why there is no estimate (``not in this design``, ``too few to say``), else ``None``."""

    def to_dict(self) -> dict[str, Any]:
        return {"evaluation_llm": self.evaluation_llm, "estimate": _num(self.estimate), "ci_low": _num(self.ci_low),
                "ci_high": _num(self.ci_high), "n_own": self.n_own, "n_other": self.n_other,
                "n_evaluators": self.n_evaluators, "family_size": self.family_size, "note": self.note}

    def sentence(self) -> str:
        pooled = self.evaluation_llm == POOLED
        subject = "the judges taken together" if pooled else self.evaluation_llm
        if self.estimate is None or self.ci_low is None or self.ci_high is None:
            return f"Self-preference of {subject}: {self.note or TOO_FEW}."
        interval = _ci_text(self.ci_low, self.ci_high, self.family_size, "models")
        rests = f"{self.n_own} scores of own-model essays, {self.n_other} of others"
        scores_own = "Judges score essays their own model wrote" if pooled else f"{subject} scores its own essays"
        if self.ci_low > 0:
            return f"{scores_own} {_fmt(self.estimate)} higher ({interval}; {rests})."
        if self.ci_high < 0:
            return f"{scores_own} {_fmt(-self.estimate)} lower ({interval}; {rests})."
        largest = max(abs(self.ci_low), abs(self.ci_high))
        return (f"No evidence of self-preference by {subject} ({_fmt(self.estimate)}, {interval}, which includes 0; "
                f"{rests}); an effect as large as {_fmt(largest)} is not ruled out.")


@dataclass(frozen=True)
class LengthBias:
    """Slope of the evaluator-adjusted essay mean on essay length within one essay template."""

    essay_template: str
    slope: float | None
    """Score change per :data:`WORDS_PER_UNIT` words (``None``: too few to say)."""
    ci_low: float | None
    """95% t interval (simultaneous over templates; ``None``: too few to say)."""
    ci_high: float | None
    n_essays: int
    """Essays with a known length in this template."""
    mean_length: float | None
    """Their mean length in words."""
    family_size: int
    """Templates the intervals are adjusted over."""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"essay_template": self.essay_template, "slope_per_100_words": _num(self.slope),
                "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high), "n_essays": self.n_essays,
                "mean_length": _num(self.mean_length), "family_size": self.family_size, "note": self.note}

    def sentence(self) -> str:
        where = f"Within essay template {self.essay_template}"
        if self.slope is None or self.ci_low is None or self.ci_high is None:
            return f"{where}, {self.note or TOO_FEW} whether length moves scores ({self.n_essays} essays with a length)."
        interval = _ci_text(self.ci_low, self.ci_high, self.family_size, "templates")
        if self.ci_low > 0 or self.ci_high < 0:
            direction = "rise" if self.slope > 0 else "fall"
            return (f"{where}, scores {direction} by {_fmt(abs(self.slope))} per {WORDS_PER_UNIT} words "
                    f"({interval}; {self.n_essays} essays). This is an association: longer essays may also be "
                    "better, so the length-controlled score is shown beside the mean.")
        return (f"{where}, no clear link between length and score ({_fmt(self.slope)} per {WORDS_PER_UNIT} words, "
                f"{interval}, which includes 0; {self.n_essays} essays).")


@dataclass(frozen=True)
class LengthControlledEssay:
    """An essay's evaluator-adjusted mean beside its length-controlled score."""

    essay_gen_id: str
    essay_template: str
    length: int | None
    """Words (``None``: unknown)."""
    mean: float
    """Evaluator-adjusted mean (from the essay model)."""
    controlled: float | None
    """``mean - slope · (length - template mean length) / 100`` (``None``: no slope or no length)."""

    def to_dict(self) -> dict[str, Any]:
        return {"essay_gen_id": self.essay_gen_id, "essay_template": self.essay_template, "length": self.length,
                "mean": _num(self.mean), "length_controlled": _num(self.controlled)}


@dataclass(frozen=True)
class ScaleUse:
    """How much of an evaluator's scoring sits at the ends of the scale."""

    evaluator: str
    n: int
    """Scores of this evaluator."""
    ceiling_share: float
    """Share of its scores at the scale's top value."""
    ceiling_low: float
    """Wilson 95% interval of that share."""
    ceiling_high: float
    floor_share: float
    """Share of its scores at the scale's bottom value."""
    floor_low: float
    floor_high: float

    def to_dict(self) -> dict[str, Any]:
        return {"evaluator": self.evaluator, "n": self.n, "ceiling_share": _num(self.ceiling_share),
                "ceiling_ci_low": _num(self.ceiling_low), "ceiling_ci_high": _num(self.ceiling_high),
                "floor_share": _num(self.floor_share), "floor_ci_low": _num(self.floor_low),
                "floor_ci_high": _num(self.floor_high)}

    @property
    def crowds_ceiling(self) -> bool:
        return self.ceiling_low > HEAVY_SHARE

    @property
    def crowds_floor(self) -> bool:
        return self.floor_low > HEAVY_SHARE


@dataclass(frozen=True)
class JudgeDiagnostics:
    """Self-preference, length bias and scale use of the evaluators (see the module docstring)."""

    self_preference: tuple[SelfPreference, ...]
    """The pooled row first, then one per evaluation model that could be checked; empty when
    the design has no evaluator scoring both its own model's and other models' essays."""
    self_preference_note: str | None
    """Why self-preference could not be checked at all (``None`` when it was)."""
    length_bias: tuple[LengthBias, ...]
    """One row per essay template (empty when no lengths were given)."""
    length_controlled: tuple[LengthControlledEssay, ...]
    """One row per essay, in essay order (empty when no lengths were given)."""
    length_note: str | None
    """Why the length check was skipped or what it left out (``None``: nothing to say)."""
    scale_use: tuple[ScaleUse, ...]
    """One row per evaluator (empty when the scale is unknown)."""
    scale_note: str | None
    """Why scale use was skipped (``None`` when it was computed)."""
    scale: str | None
    """The scale the ends refer to (``0-1`` after normalisation)."""
    ceiling: float | None
    floor: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "self_preference": [row.to_dict() for row in self.self_preference],
            "self_preference_note": self.self_preference_note,
            "length_bias": [row.to_dict() for row in self.length_bias],
            "length_controlled": [row.to_dict() for row in self.length_controlled],
            "length_note": self.length_note,
            "scale_use": [row.to_dict() for row in self.scale_use],
            "scale_note": self.scale_note,
            "scale": self.scale,
            "ceiling": _num(self.ceiling),
            "floor": _num(self.floor),
            "sentences": self.sentences(),
        }

    @staticmethod
    def empty_tables() -> dict[str, pl.DataFrame]:
        """The same tables with no rows (an analysis without judge diagnostics)."""
        return {name: pl.DataFrame(schema=schema) for name, schema in (
            ("judge_self_preference", _SELF_SCHEMA), ("judge_length_bias", _LENGTH_SCHEMA),
            ("judge_length_controlled", _CONTROLLED_SCHEMA), ("judge_scale_use", _SCALE_SCHEMA))}

    def tables(self) -> dict[str, pl.DataFrame]:
        """CSV-ready tables by name (``judge_self_preference``, ``judge_length_bias``,
        ``judge_length_controlled``, ``judge_scale_use``)."""
        def frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
            return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)

        return {
            "judge_self_preference": frame([r.to_dict() for r in self.self_preference], _SELF_SCHEMA),
            "judge_length_bias": frame([r.to_dict() for r in self.length_bias], _LENGTH_SCHEMA),
            "judge_length_controlled": frame([r.to_dict() for r in self.length_controlled], _CONTROLLED_SCHEMA),
            "judge_scale_use": frame([r.to_dict() for r in self.scale_use], _SCALE_SCHEMA),
        }

    def sentences(self) -> list[str]:
        """Plain-English findings for the report, each claiming only what its interval supports."""
        out: list[str] = []
        if self.self_preference_note:
            out.append(f"Self-preference is {self.self_preference_note}.")
        out.extend(row.sentence() for row in self.self_preference)
        if self.length_note:
            out.append(f"Length bias: {self.length_note}.")
        out.extend(row.sentence() for row in self.length_bias)
        out.extend(self._scale_sentences())
        return out

    def _scale_sentences(self) -> list[str]:
        if self.scale_note:
            return [f"Scale use is not checked: {self.scale_note}."]
        if not self.scale_use or self.ceiling is None or self.floor is None:
            return []
        top = f"the top score ({self.ceiling:g} on {self.scale})"
        bottom = f"the bottom score ({self.floor:g} on {self.scale})"
        out = [f"{use.evaluator} gives {top} to {use.ceiling_share:.0%} of its {use.n} scores "
               f"(95% CI {use.ceiling_low:.0%} to {use.ceiling_high:.0%}): it has little room to tell the best "
               "essays apart." for use in self.scale_use if use.crowds_ceiling]
        most = max(self.scale_use, key=lambda use: use.ceiling_share)
        if not out and most.ceiling_share == 0:
            out.append(f"No evaluator gives {top} to any essay.")
        elif not out:
            out.append(f"No evaluator is shown to give {top} to more than {HEAVY_SHARE:.0%} of its scores; the "
                       f"highest share is {most.evaluator}'s {most.ceiling_share:.0%} "
                       f"(95% CI {most.ceiling_low:.0%} to {most.ceiling_high:.0%}).")
        out.extend(f"{use.evaluator} gives {bottom} to {use.floor_share:.0%} of its {use.n} scores "
                   f"(95% CI {use.floor_low:.0%} to {use.floor_high:.0%}): it has little room to tell the weakest "
                   "essays apart." for use in self.scale_use if use.crowds_floor)
        return out


_SELF_SCHEMA = {"evaluation_llm": pl.String, "estimate": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
                "n_own": pl.Int64, "n_other": pl.Int64, "n_evaluators": pl.Int64, "family_size": pl.Int64,
                "note": pl.String}
_LENGTH_SCHEMA = {"essay_template": pl.String, "slope_per_100_words": pl.Float64, "ci_low": pl.Float64,
                  "ci_high": pl.Float64, "n_essays": pl.Int64, "mean_length": pl.Float64, "family_size": pl.Int64,
                  "note": pl.String}
_CONTROLLED_SCHEMA = {"essay_gen_id": pl.String, "essay_template": pl.String, "length": pl.Int64,
                      "mean": pl.Float64, "length_controlled": pl.Float64}
_SCALE_SCHEMA = {"evaluator": pl.String, "n": pl.Int64, "ceiling_share": pl.Float64, "ceiling_ci_low": pl.Float64,
                 "ceiling_ci_high": pl.Float64, "floor_share": pl.Float64, "floor_ci_low": pl.Float64,
                 "floor_ci_high": pl.Float64}


# -- entry point -----------------------------------------------------------------------------
def judge_diagnostics(scores: PreparedScores, fit: EssayModelFit,
                      essay_lengths: Mapping[str, int] | None) -> JudgeDiagnostics:
    """Self-preference, length bias and scale use of the evaluators of ``scores``.

    ``fit`` is :func:`~._essay_model.fit_essay_model` of the same ``scores``; ``essay_lengths``
    maps essay ids to their length in words (``None``: the length check is skipped). Never
    raises for a design that lacks what a check needs: that check says why instead.
    """
    preference, preference_note = self_preference(scores, fit)
    lengths, controlled, length_note = length_bias(scores, fit, essay_lengths)
    scale_use, scale_note, ceiling, floor = scale_use_by_evaluator(scores)
    return JudgeDiagnostics(
        self_preference=preference,
        self_preference_note=preference_note,
        length_bias=lengths,
        length_controlled=controlled,
        length_note=length_note,
        scale_use=scale_use,
        scale_note=scale_note,
        scale=scores.scale,
        ceiling=ceiling,
        floor=floor,
    )


# -- self-preference -------------------------------------------------------------------------
def _writers(scores: PreparedScores) -> list[str] | None:
    """The model that wrote each essay (the draft's model for copy-mode essays); None without
    an ``essay_llm`` column."""
    if "essay_llm" not in scores.essay_factors:
        return None
    essay_models = scores.essay_levels("essay_llm")
    draft_models = scores.essay_levels("draft_llm") if "draft_llm" in scores.essay_factors else [NO_LEVEL] * len(essay_models)
    return [draft if model == COPY_LEVEL else model for model, draft in zip(essay_models, draft_models, strict=True)]


def self_preference(scores: PreparedScores, fit: EssayModelFit) -> tuple[tuple[SelfPreference, ...], str | None]:
    """The pooled and per-model self-preference rows, or a note saying why there are none."""
    writers = _writers(scores)
    if writers is None or "evaluation_llm" not in scores.evaluator_factors:
        return (), f"{NOT_IN_DESIGN} (the table has no essay_llm and evaluation_llm columns)"
    judge_models = scores.evaluator_levels("evaluation_llm")
    unknown = {NO_LEVEL, COPY_LEVEL, HUMAN_LEVEL}
    writer_of_row = np.array(writers, dtype=object)[scores.essay_index]
    model_of_row = np.array(judge_models, dtype=object)[scores.evaluator_index]
    own = (writer_of_row == model_of_row) & ~np.isin(model_of_row, list(unknown))
    # Per evaluator: did it score both own and other essays? Only those make δ estimable.
    n_evaluators = len(scores.evaluators)
    own_per_evaluator = np.bincount(scores.evaluator_index, weights=own, minlength=n_evaluators)
    all_per_evaluator = np.bincount(scores.evaluator_index, minlength=n_evaluators)
    mixed = (own_per_evaluator > 0) & (own_per_evaluator < all_per_evaluator)
    if not mixed.any():
        return (), (f"{NOT_IN_DESIGN}: no evaluator scores both essays its own model wrote and essays other "
                    "models wrote")
    models = sorted({judge_models[j] for j in np.flatnonzero(mixed)})
    residual = fit.residuals(scores)
    df_base = fit.df_resid
    pooled = _regress(scores, residual, df_base, [own.astype(np.float64)], 1)
    known_rows = ~np.isin(model_of_row, list(unknown))
    known_evaluators = np.array([m not in unknown for m in judge_models])
    rows = [_row(POOLED, pooled[0], own, known_rows, mixed, known_evaluators, 1)]
    columns = [(own & (model_of_row == m)).astype(np.float64) for m in models]
    per_model = _regress(scores, residual, df_base, columns, len(models))
    for model, result in zip(models, per_model, strict=True):
        of_model = model_of_row == model
        evaluators_of_model = np.array([m == model for m in judge_models])
        rows.append(_row(model, result, own & of_model, of_model, mixed, evaluators_of_model, len(models)))
    return tuple(rows), None


@dataclass(frozen=True)
class _Coefficient:
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    note: str | None


def _regress(scores: PreparedScores, residual: np.ndarray, df_base: int, columns: list[np.ndarray],
             family: int) -> list[_Coefficient]:
    """Frisch–Waugh–Lovell: regress the essay-model residuals on the indicator columns, each
    projected off the essay and evaluator effects; columns with nothing left are not estimable.
    Intervals are t intervals, Bonferroni-adjusted over ``family``."""
    projected = [project_out(scores, column) for column in columns]
    kept: list[int] = []
    basis: list[np.ndarray] = []
    for index, (column, tilde) in enumerate(zip(columns, projected, strict=True)):
        total = float(column @ column)
        left = tilde.copy()
        for q in basis:  # what the earlier kept columns do not already explain
            left -= (q @ left) * q
        if total > 0 and float(left @ left) > _IDENTIFIED * total:
            kept.append(index)
            basis.append(left / np.sqrt(float(left @ left)))
    results = [_Coefficient(None, None, None, NOT_IN_DESIGN) for _ in columns]
    if not kept:
        return results
    design = np.stack([projected[i] for i in kept], axis=1)
    gram = design.T @ design
    beta = np.linalg.solve(gram, design.T @ residual)
    df = df_base - len(kept)
    if df < 1:
        return [_Coefficient(None, None, None, TOO_FEW) if i in kept else r for i, r in enumerate(results)]
    sigma2 = float(((residual - design @ beta) ** 2).sum()) / df
    se = np.sqrt(sigma2 * np.diag(np.linalg.inv(gram)))
    quantile = _t(df, (1 - CONFIDENCE) / family)
    for position, index in enumerate(kept):
        b, half = float(beta[position]), float(quantile * se[position])
        results[index] = _Coefficient(b, b - half, b + half, None)
    return results


def _row(model: str, result: _Coefficient, own_rows: np.ndarray, model_rows: np.ndarray, mixed: np.ndarray,
         evaluators_of_model: np.ndarray, family: int) -> SelfPreference:
    n_own = int(own_rows.sum())
    return SelfPreference(
        evaluation_llm=model,
        estimate=result.estimate,
        ci_low=result.ci_low,
        ci_high=result.ci_high,
        n_own=n_own,
        n_other=int(model_rows.sum()) - n_own,
        n_evaluators=int((mixed & evaluators_of_model).sum()),
        family_size=family,
        note=result.note,
    )


# -- length bias -----------------------------------------------------------------------------
def length_bias(scores: PreparedScores, fit: EssayModelFit, essay_lengths: Mapping[str, int] | None,
                ) -> tuple[tuple[LengthBias, ...], tuple[LengthControlledEssay, ...], str | None]:
    """Per essay template, the slope of the adjusted essay mean on length, and every essay's
    length-controlled score; a note when lengths are missing or the design is split."""
    if essay_lengths is None:
        return (), (), "essay lengths are not known (a score file without the essays' texts)"
    templates = (scores.essay_levels("essay_template") if "essay_template" in scores.essay_factors
                 else [ALL_TEMPLATES] * scores.n_essays)
    lengths = np.array([float(essay_lengths[e]) if e in essay_lengths else np.nan for e in scores.essays])
    usable = np.isfinite(lengths) & np.isfinite(fit.means)
    notes = []
    if (~np.isfinite(lengths)).any():
        notes.append(f"{int((~np.isfinite(lengths)).sum())} of {scores.n_essays} essays have no known length and "
                     "are left out")
    if fit.n_parts > 1:
        # Means from unconnected parts sit on different evaluators' scales: compare within the largest.
        largest = int(np.bincount(fit.part_of_essay).argmax())
        usable &= fit.part_of_essay == largest
        notes.append(f"the design falls into {fit.n_parts} unconnected parts; only the largest is used")
    names = sorted(set(templates))
    family = len(names)
    template_of = np.array(templates, dtype=object)
    rows: list[LengthBias] = []
    slope_of: dict[str, tuple[float, float]] = {}
    for name in names:
        mask = usable & (template_of == name)
        row = _slope(name, lengths[mask], fit.means[mask], family)
        rows.append(row)
        if row.slope is not None and row.mean_length is not None:
            slope_of[name] = (row.slope, row.mean_length)
    controlled = []
    for index, essay in enumerate(scores.essays):
        known = bool(np.isfinite(lengths[index]))
        found = slope_of.get(templates[index])
        value = (float(fit.means[index]) - found[0] * (lengths[index] - found[1]) / WORDS_PER_UNIT
                 if known and found is not None and usable[index] else None)
        controlled.append(LengthControlledEssay(essay, templates[index], int(lengths[index]) if known else None,
                                                float(fit.means[index]), value))
    return tuple(rows), tuple(controlled), "; ".join(notes) or None


def _slope(template: str, lengths: np.ndarray, means: np.ndarray, family: int) -> LengthBias:
    """OLS slope of ``means`` on ``lengths`` per :data:`WORDS_PER_UNIT` words, with a t interval."""
    n = int(lengths.size)
    mean_length = float(lengths.mean()) if n else None
    if n < MIN_ESSAYS_FOR_SLOPE:
        return LengthBias(template, None, None, None, n, mean_length, family, TOO_FEW)
    x = (lengths - lengths.mean()) / WORDS_PER_UNIT
    sxx = float(x @ x)
    if sxx <= 0:
        return LengthBias(template, None, None, None, n, mean_length, family,
                          "every essay has the same length, so it is impossible to say")
    slope = float(x @ (means - means.mean())) / sxx
    residual = means - means.mean() - slope * x
    df = n - 2
    se = math.sqrt(float(residual @ residual) / df / sxx)
    half = _t(df, (1 - CONFIDENCE) / family) * se
    return LengthBias(template, slope, slope - half, slope + half, n, mean_length, family)


# -- scale use -------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927); ``(0, 1)`` for ``n == 0``."""
    if n <= 0:
        return 0.0, 1.0
    z = float(ndtri(1 - (1 - confidence) / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def scale_use_by_evaluator(scores: PreparedScores) -> tuple[tuple[ScaleUse, ...], str | None, float | None, float | None]:
    """Each evaluator's shares of scores at the ceiling and floor of the scale, or why not."""
    if scores.scale is None:
        return (), "the score table gives no scale, so its top and bottom are unknown", None, None
    floor, ceiling = (0.0, 1.0) if scores.normalised else scale_bounds(scores.scale)
    tolerance = 1e-9 * max(1.0, abs(ceiling), abs(floor))
    n_evaluators = len(scores.evaluators)
    counts = np.bincount(scores.evaluator_index, minlength=n_evaluators)
    at_top = np.bincount(scores.evaluator_index, weights=scores.y >= ceiling - tolerance, minlength=n_evaluators)
    at_bottom = np.bincount(scores.evaluator_index, weights=scores.y <= floor + tolerance, minlength=n_evaluators)
    rows = []
    for j, evaluator in enumerate(scores.evaluators):
        n, top, bottom = int(counts[j]), int(at_top[j]), int(at_bottom[j])
        top_low, top_high = wilson_interval(top, n)
        bottom_low, bottom_high = wilson_interval(bottom, n)
        rows.append(ScaleUse(evaluator, n, top / n, top_low, top_high, bottom / n, bottom_low, bottom_high))
    return tuple(rows), None, ceiling, floor
