"""The results layer: scores, aggregates, top essays, lineage graph, plots and the per-cohort
report, computed from the gens store with polars (DESIGN §7). No Dagster here; the assets in
``daydreaming_dagster.assets.results`` are thin wrappers.

Typical use::

    from daydreaming_dagster.results import build_report, evaluation_scores
    scores = evaluation_scores("data", "demo")   # one row per evaluation, with lineage
    build_report("data", "demo", top_n=5)        # data/cohorts/demo/reports/report.md (+ .html)
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
)
from .export import export_tables, write_csv
from .lineage import LineageEdges, LineageGraph, build_lineage_graph, lineage_graph
from .plots import PLOT_FILENAME, png_markdown, render_score_distributions, write_score_plot
from .report import (
    REPORT_HTML,
    REPORT_MD,
    CohortReport,
    build_report,
    stage_summary,
    write_cohort_report,
)
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
    "REPORT_HTML",
    "REPORT_MD",
    "SCORE_SCHEMA",
    "SUMMARY_DIMENSIONS",
    "SUMMARY_SCHEMA",
    "TOP_DIRNAME",
    "CohortNotFoundError",
    "CohortRecords",
    "CohortReport",
    "GenerationRecord",
    "LineageEdges",
    "LineageGraph",
    "TopEssay",
    "TopEssays",
    "build_lineage_graph",
    "build_report",
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
    "write_cohort_report",
    "write_csv",
    "write_score_plot",
]
