"""Plots of the analysis for the report: forest plot of level means with CIs, agreement
heatmap, variance-share bars (PNG bytes; Matplotlib's object API with the Agg canvas)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..analysis import Analysis

__all__ = ["agreement_heatmap", "forest_plot", "variance_bars"]

_MAX_LEVELS_PER_FACTOR = 15  # a forest panel shows the best 15 levels of a factor
_MAX_EVALUATORS = 30


def _png(figure) -> bytes:  # noqa: ANN001 - matplotlib Figure
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _figure(width: float, height: float):  # noqa: ANN202 - matplotlib Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def forest_plot(analysis: Analysis) -> bytes | None:
    """One panel per factor with two or more levels: each level's mean score with its 95% CI,
    on one shared score axis so panels compare (``None`` when no factor varies)."""
    panels = []
    for factor in analysis.factors:
        levels = [lv for lv in analysis.levels if lv.factor == factor][:_MAX_LEVELS_PER_FACTOR]
        if len(levels) >= 2:
            panels.append((factor, list(reversed(levels))))  # drawn bottom-up: best at the top
    if not panels:
        return None
    ends = [v for _, levels in panels for lv in levels for v in (lv.ci_low, lv.ci_high, lv.mean) if v is not None]
    margin = 0.05 * ((max(ends) - min(ends)) or 1.0)
    heights = [0.35 * len(levels) + 0.9 for _, levels in panels]
    figure = _figure(7.5, sum(heights) + 0.6)
    figure.suptitle(f"Mean score by level with 95% CI ({analysis.scale or 'score'})", fontsize=10)
    grid = figure.add_gridspec(len(panels), 1, height_ratios=heights)
    for index, (factor, levels) in enumerate(panels):
        axis = figure.add_subplot(grid[index, 0])
        for position, level in enumerate(levels):
            if level.ci_low is not None and level.ci_high is not None:
                axis.plot([level.ci_low, level.ci_high], [position, position], color="tab:blue", lw=2)
            axis.plot([level.mean], [position], "o", color="black", ms=4)
        axis.set_yticks(range(len(levels)), [f"{lv.level} (n={lv.n})" for lv in levels], fontsize=8)
        axis.set_ylim(-0.7, len(levels) - 0.3)
        axis.set_xlim(min(ends) - margin, max(ends) + margin)
        axis.set_title(factor, fontsize=9, loc="left")
        axis.grid(axis="x", alpha=0.3)
    return _png(figure)


def agreement_heatmap(analysis: Analysis) -> bytes | None:
    """Pairwise Spearman correlations between evaluators (``None`` below two evaluators)."""
    import numpy as np

    names = [e.evaluator for e in analysis.evaluators][:_MAX_EVALUATORS]
    if len(names) < 2:
        return None
    index = {name: i for i, name in enumerate(names)}
    matrix = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(matrix, 1.0)
    for pair in analysis.pairwise:
        if pair.a in index and pair.b in index and pair.spearman is not None:
            matrix[index[pair.a], index[pair.b]] = matrix[index[pair.b], index[pair.a]] = pair.spearman
    size = max(4.0, 0.45 * len(names) + 2.5)
    figure = _figure(size + 1.0, size)
    axis = figure.add_subplot(1, 1, 1)
    image = axis.imshow(np.ma.masked_invalid(matrix), vmin=-1, vmax=1, cmap="RdBu")
    axis.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            text = "n/a" if np.isnan(matrix[i, j]) else f"{matrix[i, j]:.2f}"
            axis.text(j, i, text, ha="center", va="center", fontsize=6)
    figure.colorbar(image, ax=axis, label="Spearman correlation")
    axis.set_title("Agreement between evaluators", fontsize=10)
    return _png(figure)


def variance_bars(analysis: Analysis) -> bytes | None:
    """Share of score variance per component with its 95% CI (``None`` when not estimated)."""
    shown = [v for v in analysis.variance if v.share is not None]
    if not shown:
        return None
    figure = _figure(7.0, 0.4 * len(shown) + 1.2)
    axis = figure.add_subplot(1, 1, 1)
    shown = list(reversed(shown))
    positions = range(len(shown))
    shares = [v.share * 100 for v in shown]
    colours = ["tab:orange" if v.component in analysis.factors else "tab:gray" for v in shown]
    axis.barh(positions, shares, color=colours)
    for position, v in zip(positions, shown, strict=True):
        if v.ci_low is not None and v.ci_high is not None:
            axis.plot([v.ci_low * 100, v.ci_high * 100], [position, position], color="black", lw=1.5)
    axis.set_yticks(list(positions), [v.component for v in shown], fontsize=8)
    axis.set_xlabel("% of score variance (95% CI); orange: spec axes", fontsize=8)
    axis.set_xlim(0, 100)
    axis.grid(axis="x", alpha=0.3)
    axis.set_title("Variance by axis", fontsize=10)
    return _png(figure)
