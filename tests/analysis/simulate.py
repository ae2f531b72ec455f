"""Simulated score tables with planted effects (the truth the validity tests check against)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Planted:
    table: pl.DataFrame
    level_means: dict[tuple[str, str], float]
    """(factor, level) → the true mean score of that level."""
    essay_means: dict[str, float]
    """essay → its true mean score (over the design's evaluators)."""


def simulate(
    seed: int,
    *,
    essays_per_cell: int = 15,
    draft_effects: dict[str, float] | None = None,
    essay_effects: dict[str, float] | None = None,
    combos: int = 1,
    combo_sd: float = 0.0,
    evaluators: int = 3,
    evaluator_sd: float = 0.2,
    essay_sd: float = 0.5,
    noise_sd: float = 1.0,
    replicates: int = 1,
) -> Planted:
    """Essays at every draft_template × essay_template × combo cell; each essay scored by every
    evaluator ``replicates`` times: score = 5 + draft effect + essay effect + combo effect +
    essay deviation + evaluator bias + noise."""
    rng = np.random.default_rng(seed)
    draft_effects = draft_effects if draft_effects is not None else {"d1": 0.0, "d2": 1.0}
    essay_effects = essay_effects if essay_effects is not None else {"x": 0.0, "y": 0.0}
    combo_effects = rng.normal(0.0, combo_sd, combos)
    bias = rng.normal(0.0, evaluator_sd, evaluators)
    mean_bias = float(bias.mean())
    rows, essay_means = [], {}
    k = 0
    for c in range(combos):
        for draft, d_eff in draft_effects.items():
            for essay_tpl, e_eff in essay_effects.items():
                for _ in range(essays_per_cell):
                    k += 1
                    essay = f"e{k:05d}"
                    mu = 5.0 + d_eff + e_eff + combo_effects[c] + rng.normal(0.0, essay_sd)
                    essay_means[essay] = mu + mean_bias
                    for j in range(evaluators):
                        for _ in range(replicates):
                            rows.append((essay, f"judge{j}", mu + bias[j] + rng.normal(0.0, noise_sd),
                                         f"combo{c}", draft, essay_tpl))
    table = pl.DataFrame(rows, schema=["essay_gen_id", "evaluator", "score", "combo_id", "draft_template", "essay_template"],
                         orient="row")
    # True level means: population means given the planted effects (combo effects as drawn).
    level_means = {}
    for draft, d_eff in draft_effects.items():
        level_means[("draft_template", draft)] = 5.0 + d_eff + float(np.mean(list(essay_effects.values()))) \
            + float(combo_effects.mean()) + mean_bias
    for essay_tpl, e_eff in essay_effects.items():
        level_means[("essay_template", essay_tpl)] = 5.0 + e_eff + float(np.mean(list(draft_effects.values()))) \
            + float(combo_effects.mean()) + mean_bias
    return Planted(table, level_means, essay_means)
