"""Score-distribution plots (PNG) and their Markdown embedding for Dagster metadata.

Uses Matplotlib's object API with the Agg canvas directly (no ``pyplot``), so nothing touches
global backend state and plotting works in worker threads and headless servers.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import polars as pl

from ..data_layer import Paths, _storage
from .aggregates import level_label
from .figure_cache import content_key, frame_bytes, recall

__all__ = [
    "PLOT_DIMENSIONS",
    "PLOT_FILENAME",
    "png_markdown",
    "render_score_distributions",
    "score_plot_key",
    "score_plot_title",
    "write_score_plot",
]

PLOT_FILENAME = "score_distributions.png"
PLOT_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("evaluation_template", "evaluation template"),
    ("evaluation_llm", "evaluation model"),
    ("draft_template", "draft template"),
    ("essay_template", "essay template"),
    ("draft_llm", "draft model"),
    ("essay_llm", "essay model"),
)
_MAX_LEVELS = 25  # beyond this a panel shows the 25 levels with most scores


def _panels(scored: pl.DataFrame) -> list[tuple[str, list[tuple[str, list[float]]]]]:
    """(panel title, [(level label, scores)]) for each dimension with scored rows."""
    panels = []
    for column, title in PLOT_DIMENSIONS:
        if scored[column].null_count() == scored.height and column != "essay_llm":
            continue  # a dimension without any value has nothing to compare
        grouped = (
            scored.with_columns(level_label(column, scored.columns).alias("_level"))
            .group_by("_level")
            .agg(pl.col("score"), pl.len().alias("_n"))
            .sort(["_n", "_level"], descending=[True, False])
            .head(_MAX_LEVELS)
            .sort("_level", descending=True)  # barh draws bottom-up: alphabetical top-down
        )
        levels = [(f"{level} (n={n})", scores) for level, scores, n in grouped.iter_rows()]
        panels.append((f"by {title}", levels))
    return panels


def render_score_distributions(scores: pl.DataFrame, *, title: str = "Score distributions") -> bytes:
    """A PNG with one small panel per template/model dimension: a box plot of the scores per
    level with every score drawn as a jittered point (deterministic). With no score yet, the
    figure says so. Returns the PNG bytes."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scored = scores.filter((pl.col("parse_status") == "ok") & pl.col("score").is_not_null())
    panels = _panels(scored) if scored.height else []
    columns = 2 if len(panels) > 1 else 1
    rows = max(1, -(-len(panels) // columns))
    heights = [max(1.6, 0.45 * max((len(levels) for _, levels in panels[r * columns:(r + 1) * columns]), default=1) + 1.0)
               for r in range(rows)]
    figure = Figure(figsize=(6.0 * columns, sum(heights) + 0.8), dpi=100)
    FigureCanvasAgg(figure)
    figure.suptitle(f"{title} ({scored.height} scores)")
    if not panels:
        axis = figure.add_subplot(1, 1, 1)
        axis.text(0.5, 0.5, "no parsed evaluation scores yet", ha="center", va="center")
        axis.set_axis_off()
    else:
        grid = figure.add_gridspec(rows, columns, height_ratios=heights)
        upper = max(10.0, float(scored["score"].max() or 0.0))
        rng = np.random.default_rng(0)
        for index, (panel_title, levels) in enumerate(panels):
            axis = figure.add_subplot(grid[index // columns, index % columns])
            data = [np.asarray(values, dtype=float) for _, values in levels]
            axis.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False)
            for position, values in enumerate(data, start=1):
                jitter = rng.uniform(-0.15, 0.15, size=len(values))
                axis.scatter(values, position + jitter, s=12, alpha=0.6, color="tab:blue", zorder=3)
            axis.set_yticks(range(1, len(levels) + 1), [label for label, _ in levels], fontsize=8)
            axis.set_xlim(-0.3, upper + 0.3)
            axis.set_title(panel_title, fontsize=10)
            axis.set_xlabel("score", fontsize=8)
            axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def score_plot_key(scores: pl.DataFrame, title: str) -> str:
    """The :mod:`~.figure_cache` key of the score plot drawn from ``scores`` under ``title``."""
    return content_key("score-distributions", frame_bytes(scores), title)


def score_plot_title(cohort_id: str) -> str:
    return f"Cohort {cohort_id}: score distributions"


def write_score_plot(data_root: str | os.PathLike[str] | Path, cohort_id: str, scores: pl.DataFrame) -> Path:
    """Render the plot for ``scores`` to ``cohorts/<cohort_id>/reports/score_distributions.png``
    (or take it from the figure cache when it was drawn from the same scores)."""
    path = Paths.from_str(data_root).cohort_reports_dir(cohort_id) / PLOT_FILENAME
    title = score_plot_title(cohort_id)
    found, png = recall(score_plot_key(scores, title))
    _storage.atomic_write_bytes(path, png if found and png is not None else render_score_distributions(scores, title=title))
    return path


def png_markdown(png: bytes, alt: str = "score distributions") -> str:
    """Markdown embedding ``png`` inline as base64 (for ``MetadataValue.md`` or a report)."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
