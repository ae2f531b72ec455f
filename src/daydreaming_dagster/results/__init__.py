"""The results layer: the tables (scores, aggregates, top essays, lineage graph, score plots),
computed from the gens store with polars (DESIGN §7). No Dagster here; the assets in
``daydreaming_dagster.assets.results`` are thin wrappers.

The bottom of the results house: :mod:`daydreaming_dagster.analysis` reads these tables and
:mod:`daydreaming_dagster.reporting` writes the report from both; nothing here imports either.

Typical use::

    from daydreaming_dagster.results import essay_aggregates, evaluation_scores
    scores = evaluation_scores("data", "demo")   # one row per evaluation, with lineage
    per_essay = essay_aggregates(scores)         # one row per essay: mean, spread, lineage
"""

from .aggregates import (
    ESSAY_AGGREGATE_SCHEMA,
    SUMMARY_DIMENSIONS,
    SUMMARY_SCHEMA,
    essay_aggregates,
    evaluator_pivot,
    group_summary,
    template_model_summaries,
)
from .cohort import (
    GENERATION_SCHEMA,
    CohortNotFoundError,
    CohortRecords,
    GenerationRecord,
    generations_table,
    load_cohort_records,
    read_cohort_members,
    stage_summary,
)
from .export import export_tables, write_csv
from .lineage import LineageEdges, LineageGraph, build_lineage_graph, lineage_graph
from .plots import PLOT_FILENAME, png_markdown, render_score_distributions, write_score_plot
from .scores import (
    SCORE_SCHEMA,
    concepts_by_combo,
    evaluation_scores,
    evaluator_label,
    scores_from_records,
)
from .top import (
    INDEX_FILENAME,
    TOP_DIRNAME,
    TopEssay,
    TopEssays,
    export_top_essays,
    rank_top_essays,
)

__all__ = [
    "ESSAY_AGGREGATE_SCHEMA",
    "GENERATION_SCHEMA",
    "INDEX_FILENAME",
    "PLOT_FILENAME",
    "SCORE_SCHEMA",
    "SUMMARY_DIMENSIONS",
    "SUMMARY_SCHEMA",
    "TOP_DIRNAME",
    "CohortNotFoundError",
    "CohortRecords",
    "GenerationRecord",
    "LineageEdges",
    "LineageGraph",
    "TopEssay",
    "TopEssays",
    "build_lineage_graph",
    "concepts_by_combo",
    "essay_aggregates",
    "evaluation_scores",
    "evaluator_label",
    "evaluator_pivot",
    "export_tables",
    "export_top_essays",
    "generations_table",
    "group_summary",
    "lineage_graph",
    "load_cohort_records",
    "png_markdown",
    "rank_top_essays",
    "read_cohort_members",
    "render_score_distributions",
    "scores_from_records",
    "stage_summary",
    "template_model_summaries",
    "write_csv",
    "write_score_plot",
]
