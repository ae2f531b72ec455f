"""Results assets (group ``results``), partitioned by cohort id (DESIGN §7, seed 004).

Each body calls one function of :mod:`daydreaming_dagster.results` and adds metadata:

- ``evaluation_scores``: one row per evaluation with lineage, read from the gens store;
- ``essay_aggregates``, ``evaluator_pivot``, ``template_model_summaries``: computed from
  ``evaluation_scores`` (loaded through ``table_io_manager``);
- ``top_essays``: the top-N essays copied to ``results/<cohort>/top_essays/`` with an index;
- ``lineage_graph``: Draft → Essay → Evaluation (+ Concept) graph for ``graph_io_manager``;
- ``cohort_report``: ``cohorts/<cohort>/reports/report.md`` + ``report.html``, CSV exports
  and the score plot (embedded in the materialisation's metadata);
- ``analysis_<table>`` (one multi-asset, :func:`score_analysis`): the analysis tables of
  :mod:`daydreaming_dagster.analysis` (CIs, top-k probabilities, agreement, variance shares,
  diversity), one table each, with alpha and the top factor in the metadata.

Frames go to ``table_io_manager``, dicts to ``json_io_manager``, the graph to
``graph_io_manager`` (which set of managers is chosen in ``environments.py``).
"""

# No `from __future__ import annotations`: Dagster inspects the context/config annotations.
from typing import Any

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    Config,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)
from pydantic import Field

from .. import analysis, reporting, results
from ..io_managers.graph import EdgeSet, GraphData
from ..partitions import cohort_partitions
from ..resources import DataRootResource

__all__ = [
    "ANALYSIS_TABLES",
    "RESULTS_ASSETS",
    "AnalysisConfig",
    "ResultsConfig",
    "cohort_report",
    "essay_aggregates",
    "evaluation_scores",
    "evaluator_pivot",
    "lineage_graph",
    "score_analysis",
    "template_model_summaries",
    "to_graph_data",
    "top_essays",
]

GROUP = "results"
TABLE_IO = "table_io_manager"
JSON_IO = "json_io_manager"
GRAPH_IO = "graph_io_manager"
# Results read the cohort's membership (built by the cohort assets) and its gens store.
COHORT_MEMBERSHIP = AssetKey("cohort_membership")


class ResultsConfig(Config):
    """How many essays the ranking and the report show."""

    top_n: int = Field(default=5, ge=0, description="Number of top essays to copy and list.")


def _table_metadata(frame: pl.DataFrame) -> dict[str, Any]:
    return {"dagster/row_count": frame.height, "columns": ", ".join(frame.columns)}


@asset(
    partitions_def=cohort_partitions,
    group_name=GROUP,
    io_manager_key=TABLE_IO,
    deps=[COHORT_MEMBERSHIP],
    kinds={"polars"},
    description="One row per evaluation of the cohort with lineage, score, scale and parse status.",
)
def evaluation_scores(context: AssetExecutionContext, data_root: DataRootResource) -> pl.DataFrame:
    frame = results.evaluation_scores(data_root.root, context.partition_key)
    statuses = dict(frame.group_by("parse_status").len().iter_rows())
    scored = frame["score"].drop_nulls()
    context.add_output_metadata({
        **_table_metadata(frame),
        # Statuses of members a gate or adaptive evaluation held back only appear when present.
        "parse_status": MetadataValue.json({k: statuses.get(k, 0) for k in results.cohort.STATUSES
                                            if k not in results.cohort.WITHHELD or statuses.get(k)}),
        "mean_score": float(scored.mean()) if scored.len() else None,
    })
    return frame


@asset(
    partitions_def=cohort_partitions,
    group_name=GROUP,
    io_manager_key=TABLE_IO,
    kinds={"polars"},
    description="Per essay: n, mean, std, min, max of its scores, spread between evaluators, rank.",
)
def essay_aggregates(context: AssetExecutionContext, evaluation_scores: pl.DataFrame) -> pl.DataFrame:
    frame = results.essay_aggregates(evaluation_scores)
    context.add_output_metadata(_table_metadata(frame))
    return frame


@asset(
    partitions_def=cohort_partitions,
    group_name=GROUP,
    io_manager_key=TABLE_IO,
    kinds={"polars"},
    description="Essay × evaluator (evaluation_template/evaluation_llm) mean scores.",
)
def evaluator_pivot(context: AssetExecutionContext, evaluation_scores: pl.DataFrame) -> pl.DataFrame:
    frame = results.evaluator_pivot(evaluation_scores)
    context.add_output_metadata(_table_metadata(frame))
    return frame


@asset(
    partitions_def=cohort_partitions,
    group_name=GROUP,
    io_manager_key=TABLE_IO,
    kinds={"polars"},
    description="Score summaries per draft/essay/evaluation template and model (long format).",
)
def template_model_summaries(context: AssetExecutionContext, evaluation_scores: pl.DataFrame) -> pl.DataFrame:
    frame = results.template_model_summaries(evaluation_scores)
    context.add_output_metadata(_table_metadata(frame))
    return frame


@asset(
    partitions_def=cohort_partitions,
    group_name=GROUP,
    io_manager_key=JSON_IO,
    kinds={"python"},
    description="The top-N essays, copied to results/<cohort>/top_essays/ with a ranked index.csv.",
)
def top_essays(
    context: AssetExecutionContext, config: ResultsConfig, data_root: DataRootResource, essay_aggregates: pl.DataFrame
) -> dict[str, Any]:
    ranking = results.export_top_essays(data_root.root, context.partition_key, essay_aggregates, config.top_n)
    context.add_output_metadata({
        "count": len(ranking.essays),
        "index": MetadataValue.path(str(data_root.paths().data_root / ranking.index_file)),
        "ranking": MetadataValue.md(
            "\n".join(f"{e.rank}. `{e.essay_gen_id}`: {e.mean:.2f} (n={e.n})" for e in ranking.essays) or "no scored essay"
        ),
    })
    return ranking.to_dict()


ANALYSIS_TABLES = {
    "essays": "Per essay: evaluator-adjusted mean, 95% CI, n, probability of being in the top 1/5/10.",
    "levels": "Per axis level: expected score of a new draft of the level, 95% CI with drafts as units, n.",
    "differences": "Differences between levels of an axis with simultaneous 95% CIs per factor (and unadjusted).",
    "variance": "Share of score variance per axis, essay, evaluator, disagreement and replicate noise, with 95% CIs.",
    "evaluators": "Per evaluator: n, mean, offset, Spearman with the leave-one-out consensus (95% CI), flag, "
                  "self-consistency.",
    "pairwise": "Spearman correlation of every evaluator pair, with n and a 95% CI.",
    "human_vs_llm": "Per human rater: Spearman (95% CI) with each LLM evaluator and with the LLM consensus.",
    "judge_self_preference": "Extra score an evaluation model gives essays it wrote, with a 95% CI.",
    "judge_length_bias": "Per essay template: slope of the adjusted essay mean on length (per 100 words), 95% CI.",
    "judge_length_controlled": "Per essay: length and its length-controlled score.",
    "judge_scale_use": "Per evaluator: share of scores at the scale's ceiling and floor, Wilson 95% CIs.",
    "clusters": "Near-duplicate clusters of essays and drafts (TF-IDF cosine), similarity to the target text.",
    "diversity": "Per template/model level: texts, distinct clusters, mean pairwise distance.",
    "tournament_strengths": "Pairwise tournament: Bradley-Terry strength per essay (pooled and per judge) with a 95% "
                            "bootstrap CI, P(top 1/5), wins, losses, ties and rank.",
    "tournament_judges": "Pairwise tournament per judge and pooled: position bias (95% CI), tie probability, order "
                         "consistency (Wilson CI), Kendall's tau with the score ranking.",
}


class AnalysisConfig(Config):
    """Resampling settings of the analysis (same seed, same numbers)."""

    seed: int = Field(default=analysis.DEFAULT_SEED, description="Seed of the bootstrap resampling.")
    n_boot: int = Field(default=analysis.DEFAULT_BOOTSTRAP, ge=1, description="Bootstrap resamples.")


@multi_asset(
    outs={
        f"analysis_{name}": AssetOut(io_manager_key=TABLE_IO, group_name=GROUP, kinds={"polars"}, description=text)
        for name, text in ANALYSIS_TABLES.items()
    },
    partitions_def=cohort_partitions,
    deps=[COHORT_MEMBERSHIP],
)
def score_analysis(context: AssetExecutionContext, config: AnalysisConfig, data_root: DataRootResource):  # noqa: ANN201
    """Analyse the cohort once and emit every analysis table (files under results/<cohort>/analysis/)."""
    found = analysis.analyze_cohort_or_empty(data_root.root, context.partition_key, seed=config.seed, n_boot=config.n_boot)
    analysis.write_analysis(data_root.root, context.partition_key, found)
    top = found.top_factor
    summary = {
        "alpha": found.alpha,
        "alpha_ci": MetadataValue.json(list(found.alpha_ci) if found.alpha_ci else None),
        "top_factor": top.component if top else None,
        "top_factor_share": top.share if top else None,
        "top_factor_sentence": found.top_factor_sentence,
        "top_is_tie": found.top_tie.is_tie,
        "tournament_comparisons": found.tournament.pooled.n_comparisons if found.tournament is not None else 0,
        "notes": MetadataValue.md("\n".join(f"- {n}" for n in found.notes) or "none"),
    }
    for name, frame in found.tables().items():
        yield Output(frame, output_name=f"analysis_{name}", metadata={**_table_metadata(frame), **summary})


def to_graph_data(graph: results.LineageGraph) -> GraphData:
    """The pure lineage graph as the graph IO manager's :class:`GraphData`."""
    edges = tuple(EdgeSet(e.label, e.from_label, e.to_label, e.frame) for e in graph.edges)
    return GraphData(nodes=dict(graph.nodes), edges=edges)


@asset(
    partitions_def=cohort_partitions,
    group_name=GROUP,
    io_manager_key=GRAPH_IO,
    deps=[COHORT_MEMBERSHIP],
    kinds={"kuzu"},
    description="Lineage graph: (Draft)-[:PARENT_OF]->(Essay)-[:PARENT_OF]->(Evaluation), (Draft)-[:USES]->(Concept).",
)
def lineage_graph(context: AssetExecutionContext, data_root: DataRootResource) -> GraphData:
    graph = results.build_lineage_graph(data_root.root, context.partition_key)
    context.add_output_metadata({
        "nodes": MetadataValue.json({label: frame.height for label, frame in graph.nodes.items()}),
        "edges": graph.edge_count,
    })
    return to_graph_data(graph)


@asset(
    partitions_def=cohort_partitions,
    group_name=GROUP,
    io_manager_key=JSON_IO,
    deps=[evaluation_scores, essay_aggregates, evaluator_pivot, template_model_summaries, top_essays,
          *(AssetKey(f"analysis_{name}") for name in ANALYSIS_TABLES)],
    kinds={"python"},
    description="cohorts/<cohort>/reports/report.md and report.html, CSV exports and the score plot.",
)
def cohort_report(context: AssetExecutionContext, config: ResultsConfig, data_root: DataRootResource) -> dict[str, Any]:
    report = reporting.write_cohort_report(data_root.root, context.partition_key, config.top_n)
    context.add_output_metadata({
        "report": MetadataValue.path(str(report.report_md)),
        "report_html": MetadataValue.path(str(report.report_html)),
        "evaluations": report.n_evaluations,
        "scored": report.n_scored,
        "stages": MetadataValue.md(_markdown_table(report.stage_summary)),
        "score_distributions": MetadataValue.md(results.png_markdown(report.plot_png.read_bytes())),
    })
    return {
        "cohort_id": report.cohort_id,
        "report_md": str(report.report_md),
        "report_html": str(report.report_html),
        "plot_png": str(report.plot_png),
        "csv_files": {name: str(path) for name, path in report.csv_files.items()},
        "top_essays": [e.file for e in report.top_essays.essays],
        "evaluations": report.n_evaluations,
        "scored": report.n_scored,
    }


def _markdown_table(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * frame.width
    rows = "\n".join("| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in frame.iter_rows())
    return f"{header}\n{rows}"


RESULTS_ASSETS = [
    evaluation_scores,
    essay_aggregates,
    evaluator_pivot,
    template_model_summaries,
    top_essays,
    lineage_graph,
    score_analysis,
    cohort_report,
]
