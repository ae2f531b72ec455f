"""Human raters as their own panel (issue 19, item 4).

By default ``human/<rater>`` scores never enter the LLM statistics (essay means, levels,
variance shares, alpha): a person rates a handful of essays on a scale of their own, and pooling
them would move means, shares and even the scale of the whole output. They are reported here
instead: each rater's mean and count, agreement between raters (the ceiling an LLM judge can be
held to), and each rater's agreement with each LLM evaluator and with the LLM consensus (the
evaluator-adjusted essay means), every correlation with a 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _agreement as agreement
from ._essay_model import EssayModelFit
from ._table import PreparedScores

__all__ = ["HumanPanel", "HumanRater", "human_panel"]


@dataclass(frozen=True)
class HumanRater:
    rater: str
    n: int
    """Essays rated (a re-rating replaces the earlier one in the ratings file)."""
    mean: float
    scale: str | None


@dataclass(frozen=True)
class HumanPanel:
    raters: tuple[HumanRater, ...]
    human_vs_human: tuple[agreement.PairwiseAgreement, ...]
    """Spearman between every two raters over the essays both rated: the agreement ceiling."""
    alpha: float | None
    """Krippendorff's alpha among the raters (when two rated a common essay and scales agree)."""
    human_vs_llm: tuple[agreement.HumanLlmAgreement, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "raters": [{"rater": r.rater, "n": r.n, "mean": r.mean, "scale": r.scale} for r in self.raters],
            "human_vs_human": [{"a": p.a, "b": p.b, "spearman": p.spearman, "n": p.n, "ci_low": p.ci_low,
                                "ci_high": p.ci_high} for p in self.human_vs_human],
            "alpha": self.alpha,
            "human_vs_llm": [h.to_dict() for h in self.human_vs_llm],
        }


def _aligned(source: PreparedScores, essays: tuple[str, ...]) -> np.ndarray:
    """``source``'s essay × evaluator matrix with rows in ``essays`` order (NaN where absent)."""
    own = agreement.evaluator_matrix(source)
    out = np.full((len(essays), own.shape[1]), np.nan)
    position = {e: i for i, e in enumerate(source.essays)}
    for row, essay in enumerate(essays):
        if essay in position:
            out[row] = own[position[essay]]
    return out


def human_panel(humans: PreparedScores, llm: PreparedScores | None, fit: EssayModelFit | None) -> HumanPanel:
    """The human panel against the LLM evaluators of ``llm`` (its fit gives the consensus)."""
    h_matrix = agreement.evaluator_matrix(humans)
    scales = humans.frame.select("evaluator", *(["scale"] if "scale" in humans.frame.columns else [])).unique("evaluator")
    scale_of = dict(zip(scales["evaluator"].to_list(), scales["scale"].to_list(), strict=True)) if "scale" in scales.columns else {}
    raters = []
    for j, name in enumerate(humans.evaluators):
        column = h_matrix[:, j]
        present = ~np.isnan(column)
        raters.append(HumanRater(name, int(present.sum()), float(column[present].mean()), scale_of.get(name, humans.scale)))
    pairs = tuple(agreement.pairwise_spearman(h_matrix, humans.evaluators))
    alpha = agreement.krippendorff_alpha_interval(h_matrix) if len(humans.evaluators) >= 2 and not humans.normalised else None
    rows: list[agreement.HumanLlmAgreement] = []
    if llm is not None and fit is not None:
        l_matrix = _aligned(llm, humans.essays)
        position = {e: i for i, e in enumerate(fit.essay_ids)}
        consensus = np.array([fit.means[position[e]] if e in position else np.nan for e in humans.essays])
        for h, name in enumerate(humans.evaluators):
            for j, llm_name in enumerate(llm.evaluators):
                rho, n = agreement.spearman(h_matrix[:, h], l_matrix[:, j])
                rows.append(agreement.HumanLlmAgreement(name, llm_name, rho, n, *agreement.spearman_interval(rho, n)))
            rho, n = agreement.spearman(h_matrix[:, h], consensus)
            rows.append(agreement.HumanLlmAgreement(name, agreement.CONSENSUS, rho, n, *agreement.spearman_interval(rho, n)))
    return HumanPanel(tuple(raters), pairs, alpha, tuple(rows))
