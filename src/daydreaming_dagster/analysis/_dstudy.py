"""Plan the next cohort (a D-study, Cronbach et al. 1972) from the fitted components.

An essay's evaluator-adjusted mean over ``J`` evaluators with ``r`` replicates each has error
variance ``disagreement / J + replicate / (J · r)``; its interval's half-width is about
``1.96 × sqrt(that)``, and the reliability of the essay means (the share of their variance that
is true differences between essays, a generalizability coefficient) is
``essays / (essays + error)``. ``essays`` is the variance of the true essay means, estimated as
the variance of the fitted means minus their average squared standard error.

Without replicates the two error sources cannot be told apart: every per-score error is then
treated as disagreement (replicates are assumed not to help), which is the cautious choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._essay_model import EssayModelFit

__all__ = ["DesignAdvice", "design_advice"]

_Z = 1.959963984540054
MAX_EVALUATORS = 24
MAX_REPLICATES = 4


@dataclass(frozen=True)
class DesignOption:
    evaluators: int
    replicates: int
    calls_per_essay: int
    half_width: float
    reliability: float | None


@dataclass(frozen=True)
class DesignAdvice:
    target_half_width: float | None
    essay_variance: float
    disagreement_variance: float
    replicate_variance: float | None
    """None: no replicates in the data, replicate noise folded into disagreement."""
    current: DesignOption
    recommended: DesignOption | None
    """The cheapest option (fewest calls per essay) reaching the target; None if none does."""
    options: tuple[DesignOption, ...]
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        def option(o: DesignOption | None) -> dict[str, Any] | None:
            return None if o is None else {"evaluators": o.evaluators, "replicates": o.replicates,
                                           "calls_per_essay": o.calls_per_essay, "half_width": o.half_width,
                                           "reliability": o.reliability}
        return {"target_half_width": self.target_half_width, "essay_variance": self.essay_variance,
                "disagreement_variance": self.disagreement_variance, "replicate_variance": self.replicate_variance,
                "current": option(self.current), "recommended": option(self.recommended),
                "options": [option(o) for o in self.options], "sentence": self.sentence}


def _option(j: int, r: int, essay_var: float, disagreement: float, replicate: float) -> DesignOption:
    error = disagreement / j + replicate / (j * r)
    total = essay_var + error
    return DesignOption(j, r, j * r, float(_Z * np.sqrt(error)), float(essay_var / total) if total > 0 else None)


def design_advice(fit: EssayModelFit, target_half_width: float | None) -> DesignAdvice | None:
    """Options of evaluators × replicates with their essay-interval half-width and reliability;
    None when the fit has no residual degrees of freedom."""
    if fit.df_resid < 1 or not np.isfinite(fit.residual_sd):
        return None
    residual = fit.residual_sd**2
    if fit.replicate_var is not None and fit.interaction_var is not None:
        disagreement, replicate = fit.interaction_var, fit.replicate_var
        replicate_known: float | None = replicate
    else:
        disagreement, replicate, replicate_known = residual, 0.0, None
    finite = np.isfinite(fit.se)
    essay_var = float(max(0.0, np.var(fit.means[finite], ddof=1) - np.mean(fit.se[finite] ** 2))) if finite.sum() > 1 else 0.0
    j_now = max(1, int(round(float(np.median(fit.n_evaluators)))))
    r_now = max(1, int(round(fit.mean_replicates)))
    current = _option(j_now, r_now, essay_var, disagreement, replicate)
    reps = range(1, MAX_REPLICATES + 1) if replicate_known is not None else range(1, 2)
    options = tuple(_option(j, r, essay_var, disagreement, replicate)
                    for j in range(1, max(MAX_EVALUATORS, 2 * j_now) + 1) for r in reps)
    recommended = None
    if target_half_width is not None:
        reaching = [o for o in options if o.half_width <= target_half_width]
        recommended = min(reaching, key=lambda o: (o.calls_per_essay, o.replicates), default=None)
    sentence = (f"Now: {current.evaluators} evaluator(s) × {current.replicates} replicate(s) give essay intervals of about "
                f"±{current.half_width:.2f} and a reliability of {current.reliability:.2f}." if current.reliability is not None
                else f"Now: essay intervals of about ±{current.half_width:.2f}.")
    if target_half_width is not None:
        sentence += (f" For ±{target_half_width:g}: {recommended.evaluators} evaluator(s) × {recommended.replicates} "
                     f"replicate(s) ({recommended.calls_per_essay} calls per essay, reliability "
                     f"{recommended.reliability:.2f})." if recommended is not None and recommended.reliability is not None
                     else f" No design up to {options[-1].evaluators} evaluators reaches ±{target_half_width:g}.")
    if replicate_known is None:
        sentence += " (No replicates in this cohort: replicate noise cannot be separated, so replicates are assumed not to help.)"
    return DesignAdvice(target_half_width, essay_var, float(disagreement), replicate_known, current, recommended,
                        options, sentence)
