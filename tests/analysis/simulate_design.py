"""Simulated cohorts with the structure this tool really produces (issue 19).

Unlike ``simulate.py`` (independent essays), a cohort here has the nesting of a real spec:
combinations × draft templates × draft replicates give drafts, each draft is expanded by every
essay template, and a panel of evaluators with large calibration offsets scores every essay
(optionally with replicates, missing scores and human raters). The truth the validity tests
check is the estimand docs/analysis.md states:

- a factor level's mean is the expected score of a *new* draft of that level on the cohort's
  own combinations, averaged over the cohort's essay templates and the fixed evaluator panel;
- an essay's mean is its expected score averaged over the panel (offsets included as their
  panel average, essay × evaluator disagreement excluded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Cohort:
    table: pl.DataFrame
    level_means: dict[tuple[str, str], float]
    """(factor, level) → true level mean (estimand above)."""
    essay_means: dict[str, float]
    """essay → true mean over the panel."""
    offsets: dict[str, float] = field(default_factory=dict)
    """evaluator → planted offset."""


def simulate_cohort(
    seed: int,
    *,
    combos: int = 4,
    draft_effects: dict[str, float] | None = None,
    drafts_per_cell: int = 2,
    essay_effects: dict[str, float] | None = None,
    combo_sd: float = 0.5,
    draft_sd: float = 0.8,
    essay_sd: float = 0.3,
    offsets: tuple[float, ...] = (-1.5, 0.0, 1.5),
    interaction_sd: float = 0.0,
    noise_sd: float = 0.7,
    replicates: int = 1,
    missing: float = 0.0,
    harsh_missing: float = 0.0,
    humans: int = 0,
    human_scale: str | None = None,
) -> Cohort:
    """One simulated cohort (see the module docstring).

    ``missing`` drops each score at random with this probability (never an essay's last one);
    ``harsh_missing`` drops the harshest evaluator's score on this share of essays (a parser
    failing on one judge). ``humans`` raters score every essay once, on ``human_scale`` (0-1
    when it is ``"0-1"``) with an offset of their own.
    """
    rng = np.random.default_rng(seed)
    draft_effects = draft_effects if draft_effects is not None else {"d1": 0.0, "d2": 0.0}
    essay_effects = essay_effects if essay_effects is not None else {"x": 0.0, "y": 0.0}
    combo_effects = rng.normal(0.0, combo_sd, combos)
    panel = float(np.mean(offsets))
    harsh = int(np.argmin(offsets))
    rows: list[tuple] = []
    essay_means: dict[str, float] = {}
    essay_id = 0
    for c in range(combos):
        for d_name, d_eff in draft_effects.items():
            for rep in range(drafts_per_cell):
                draft = f"d_{c}_{d_name}_{rep}"
                draft_dev = rng.normal(0.0, draft_sd)
                for x_name, x_eff in essay_effects.items():
                    essay_id += 1
                    essay = f"e{essay_id:05d}"
                    mu = 5.0 + combo_effects[c] + d_eff + x_eff + draft_dev + rng.normal(0.0, essay_sd)
                    essay_means[essay] = mu + panel
                    drop_harsh = rng.random() < harsh_missing
                    scored = 0
                    for j, offset in enumerate(offsets):
                        inter = rng.normal(0.0, interaction_sd)
                        for _ in range(replicates):
                            last = j == len(offsets) - 1 and scored == 0
                            if not last and ((j == harsh and drop_harsh) or rng.random() < missing):
                                continue
                            scored += 1
                            rows.append((essay, f"judge{j}", mu + offset + inter + rng.normal(0.0, noise_sd),
                                         draft, f"combo{c}", d_name, x_name))
                    for h in range(humans):
                        value = mu + 0.5 * (h - (humans - 1) / 2) + rng.normal(0.0, noise_sd)
                        if human_scale == "0-1":
                            value = float(np.clip(value / 10.0, 0.0, 1.0))
                        rows.append((essay, f"human/rater{h}", value, draft, f"combo{c}", d_name, x_name))
    table = pl.DataFrame(rows, schema=["essay_gen_id", "evaluator", "score", "draft_gen_id", "combo_id",
                                       "draft_template", "essay_template"], orient="row")
    if human_scale is not None:
        table = table.with_columns(
            pl.when(pl.col("evaluator").str.starts_with("human/")).then(pl.lit(human_scale))
            .otherwise(pl.lit("0-10")).alias("scale"),
            pl.col("score").clip(0.0, 10.0),
        )
    mean_essay = float(np.mean(list(essay_effects.values())))
    mean_draft = float(np.mean(list(draft_effects.values())))
    mean_combo = float(combo_effects.mean())
    level_means: dict[tuple[str, str], float] = {}
    for d_name, d_eff in draft_effects.items():
        level_means[("draft_template", d_name)] = 5.0 + mean_combo + d_eff + mean_essay + panel
    for x_name, x_eff in essay_effects.items():
        level_means[("essay_template", x_name)] = 5.0 + mean_combo + mean_draft + x_eff + panel
    for c in range(combos):
        level_means[("combo_id", f"combo{c}")] = 5.0 + combo_effects[c] + mean_draft + mean_essay + panel
    return Cohort(table, level_means, essay_means, {f"judge{j}": o for j, o in enumerate(offsets)})
