"""The per-cohort report: ``cohorts/<id>/reports/report.md`` and a self-contained ``report.html``.

One call reads the cohort once, computes every results table, exports them as CSV under
``results/<id>/``, copies the top essays, draws the score plot and writes both report files.
The report is described once as sections of blocks (paragraphs, bullet lists, tables, an
image) and rendered to Markdown and HTML from that description, so the two never disagree.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ..data_layer import GensDataLayer, Paths, _storage
from ..results.aggregates import (
    SUMMARY_DIMENSIONS,
    essay_aggregates,
    evaluator_pivot,
    template_model_summaries,
)
from ..results.cohort import (
    WITHHELD,
    CohortRecords,
    generations_table,
    load_cohort_records,
    stage_summary,
)
from ..results.export import export_tables
from ..results.figure_cache import content_key, recall
from ..results.plots import (
    PLOT_FILENAME,
    render_score_distributions,
    score_plot_key,
    score_plot_title,
    write_score_plot,
)
from ..results.scores import concepts_by_combo, scores_from_records
from ..results.top import TopEssays, export_top_essays
from ..urls import cohort_url, essay_url

if TYPE_CHECKING:
    from ..analysis import Analysis

__all__ = [
    "REPORT_HTML",
    "REPORT_MD",
    "CohortReport",
    "build_report",
    "write_cohort_report",
]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
_MAX_TABLE_ROWS = 50
# The report lives in cohorts/<id>/reports/, three levels below the data root.
_TO_ROOT = "../../../"


@dataclass(frozen=True)
class CohortReport:
    """Everything one report build wrote (paths are absolute or URLs, as the data root is)."""

    cohort_id: str
    report_md: Path
    report_html: Path
    plot_png: Path
    csv_files: dict[str, Path]
    top_essays: TopEssays
    stage_summary: pl.DataFrame
    """One row per stage: members, counts per status, cost and tokens."""
    n_evaluations: int
    n_scored: int
    analysis: Any = None
    """The cohort's :class:`~daydreaming_dagster.analysis.Analysis` (CIs, agreement, variance)."""
    analysis_files: dict[str, Path] = field(default_factory=dict)
    """``results/<cohort>/analysis/`` files by name."""


# -- report description ---------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    text: str
    href: str


Cell = str | Link


@dataclass(frozen=True)
class Para:
    parts: tuple[Cell, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str | None = None


@dataclass(frozen=True)
class Image:
    alt: str
    href: str
    png: bytes


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Para | Bullets | Table | Image] = field(default_factory=list)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _frame_table(frame: pl.DataFrame, what: str) -> Table:
    shown = frame.head(_MAX_TABLE_ROWS)
    note = None
    if frame.height > shown.height:
        note = f"First {shown.height} of {frame.height} {what}; all of them are in the CSV file."
    rows = tuple(tuple(_cell(v) for v in row) for row in shown.iter_rows())
    return Table(tuple(frame.columns), rows, note)


def _gen_link(layer: GensDataLayer, stage: str, gen_id: str | None) -> Cell:
    if not gen_id:
        return ""
    if not layer.exists(stage, gen_id):  # type: ignore[arg-type]
        return f"{gen_id} (no directory)"
    return Link(gen_id, f"{_TO_ROOT}gens/{stage}/{gen_id}/")


def _sections(
    cohort: CohortRecords,
    scores: pl.DataFrame,
    generations: pl.DataFrame,
    aggregates: pl.DataFrame,
    pivot: pl.DataFrame,
    summaries: pl.DataFrame,
    top: TopEssays,
    csv_files: dict[str, Path],
    plot_png: bytes,
    analysis: Analysis | None = None,
    analysis_plots: dict[str, bytes | None] | None = None,
) -> list[Section]:
    layer = cohort.layer
    per_stage = stage_summary(generations)
    scored = scores.filter(pl.col("parse_status") == "ok")
    sections: list[Section] = []

    overview = Section("Summary")
    total_cost = float(per_stage["cost_usd"].sum())
    overview.blocks.append(Para((
        f"{sum(per_stage['members'])} generations: "
        + ", ".join(f"{row['members']} {row['stage']}s" for row in per_stage.iter_rows(named=True))
        + f". {scored.height} of {scores.height} evaluations have a score. "
        f"Cost ${total_cost:.4f}, {int(per_stage['total_tokens'].sum())} tokens "
        f"({int(per_stage['prompt_tokens'].sum())} prompt, {int(per_stage['completion_tokens'].sum())} completion).",
    )))
    # Costs are often fractions of a cent: show them with more digits than scores.
    cost_text = pl.col("cost_usd").map_elements(lambda v: f"{v:.4f}", return_dtype=pl.String)
    # Gated/unselected/held columns only for a cohort whose gate or adaptive rounds held some back.
    unused = [status for status in WITHHELD if not per_stage[status].sum()]
    overview.blocks.append(_frame_table(per_stage.with_columns(cost_text).drop(unused), "stages"))
    scales = sorted(s for s in scored["scale"].unique().to_list() if s)
    if len(scales) > 1:
        overview.blocks.append(Para((f"Warning: scores use different scales ({', '.join(scales)}); "
                                     "compare means within one scale only. The analysis sections normalise "
                                     "every score to 0-1 before combining them.",)))
    elif analysis is not None and analysis.normalised:
        overview.blocks.append(Para((f"The analysis sections normalise scores on different scales "
                                     f"({', '.join(analysis.source_scales)}) to 0-1.",)))
    overview.blocks.append(Para((
        "Read, compare and rate the essays in the explorer (start it with `uv run daydream view`): ",
        Link(cohort_url(cohort.cohort_id), cohort_url(cohort.cohort_id)),
    )))
    sections.append(overview)
    spending = _spending_section(cohort)
    if spending is not None:
        sections.append(spending)

    top_section = Section(f"Top {top.top_n} essays")
    if top.essays:
        top_section.blocks.append(Table(
            ("rank", "essay", "mean", "n", "spread", "draft template", "draft model", "essay template", "essay model",
             "essay generation", "draft generation", "explorer"),
            tuple(
                (str(e.rank), Link(e.essay_gen_id, _TO_ROOT + e.file), _cell(e.mean), str(e.n), _cell(e.spread),
                 _cell(e.draft_template), _cell(e.draft_llm), _cell(e.essay_template), e.essay_llm or "copy",
                 _gen_link(layer, "essay", e.essay_gen_id), _gen_link(layer, "draft", e.draft_gen_id),
                 Link("read", essay_url(cohort.cohort_id, e.essay_gen_id)))
                for e in top.essays
            ),
        ))
        top_section.blocks.append(Para(("Ranked index: ", Link("index.csv", _TO_ROOT + top.index_file))))
    else:
        top_section.blocks.append(Para(("No essay has a score yet.",)))
    sections.append(top_section)

    plot_section = Section("Score distributions")
    plot_section.blocks.append(Image("score distributions", PLOT_FILENAME, plot_png))
    sections.append(plot_section)

    summary_section = Section("Scores by template and model")
    for dimension in SUMMARY_DIMENSIONS:
        part = summaries.filter(pl.col("dimension") == dimension).drop("dimension").rename({"level": dimension})
        summary_section.blocks.append(_frame_table(part, f"{dimension} levels"))
    sections.append(summary_section)

    pivot_section = Section("Essay × evaluator (mean score per evaluator)")
    pivot_section.blocks.append(_frame_table(pivot, "essays"))
    sections.append(pivot_section)

    essays_section = Section("Per-essay aggregates")
    essays_section.blocks.append(_frame_table(
        aggregates.select("rank", "essay_gen_id", "n_evaluations", "n", "n_evaluators", "mean", "std", "min", "max",
                          "spread", "draft_template", "essay_template", "draft_llm", "essay_llm"),
        "essays",
    ))
    sections.append(essays_section)

    if analysis is not None:
        sections += _analysis_sections(analysis, cohort.cohort_id, analysis_plots or {})

    failed = generations.filter(pl.col("member") & (pl.col("status") != "ok") & ~pl.col("status").is_in(WITHHELD))
    failure_section = Section(f"Failed and missing generations ({failed.height})")
    if failed.height:
        shown = failed.head(_MAX_TABLE_ROWS)
        failure_section.blocks.append(Table(
            ("stage", "generation", "status", "template", "model", "error"),
            tuple(
                (r["stage"], _gen_link(layer, r["stage"], r["gen_id"]), r["status"], _cell(r["template_id"]),
                 _cell(r["llm_model_id"]), _cell(r["error"]))
                for r in shown.iter_rows(named=True)
            ),
            f"First {shown.height} of {failed.height}; all are in generations.csv." if failed.height > shown.height else None,
        ))
    else:
        failure_section.blocks.append(Para(("Every generation of the cohort succeeded.",)))
    sections.append(failure_section)

    files = Section("Files")
    files.blocks.append(Bullets(tuple(
        (Link(f"{name}.csv", f"{_TO_ROOT}results/{cohort.cohort_id}/{name}.csv"),) for name in csv_files
    )))
    sections.append(files)
    return sections


def _spending_section(cohort: CohortRecords) -> Section | None:
    """The gate's decisions and the adaptive rounds, from ``rounds.json`` (``None`` without)."""
    path = Paths.from_str(cohort.data_root).cohort_rounds_path(cohort.cohort_id)
    if not path.is_file():
        return None
    record = _storage.read_json_object(path)
    section = Section("Spending: gates and adaptive rounds")
    calls = record.get("calls") or {}
    full, allowed = calls.get("full_design") or {}, calls.get("allowed") or {}
    if full:
        spent = sum(allowed.values())
        section.blocks.append(Para((
            f"Model calls allowed by the decisions: {spent} of the full design's {sum(full.values())} ("
            + ", ".join(f"{stage} {allowed.get(stage, 0)} of {full[stage]}" for stage in full) + "). "
            "Members held back are listed as gated, unselected or held, never as failed or missing.",)))
    adaptive = record.get("adaptive")
    if adaptive:
        rule = adaptive["rule"]
        value = adaptive.get("stopping_value")
        ended = adaptive.get("ended") or "not yet (a re-run continues)"
        section.blocks.append(Para((
            f"Adaptive evaluation. Stopping rule: stop when every essay's probability of being in the top "
            f"{rule['top']} is at least {rule['confidence']} or at most {1 - rule['confidence']:.2g} (value now: "
            f"{_num(value, 3)}); first round {rule['first']} evaluations per essay, then {rule['batch']} per round, "
            f"seed {rule['seed']}. Ended: {ended}. Evaluations chosen: {adaptive['chosen']} of {adaptive['design']} "
            f"({adaptive['saved']} not called).",)))
        section.blocks.append(Table(
            ("round", "evaluations added", "stopping value before", "undecided essays before", "complete"),
            tuple((str(r["round"]), str(len(r["evaluations"])), _num(r.get("stopping_value_before"), 3),
                   _cell(r.get("undecided_before")), "yes" if r.get("complete") else "no")
                  for r in adaptive["rounds"]),
        ))
        section.blocks.append(Para((
            "How the intervals treat the selection: which evaluations exist depends on earlier scores, but "
            "only on scores that were observed, so the selection is ignorable for the likelihood: the essay "
            "model conditions on the evaluations made and its estimates and intervals are computed as for a "
            "design fixed in advance (essays with fewer evaluations get wider intervals). Their coverage under "
            "adaptive selection is not guaranteed by that argument; benchmarks/adaptive.py measures it on "
            "simulated cohorts. As in any design, the top essays are selected by the same scores, so their "
            "intervals are optimistic (winner's curse).",)))
    gate = record.get("gate")
    if gate:
        kept = sum(1 for d in gate if d.get("passed"))
        section.blocks.append(Para((f"Essay gate: {kept} of {len(gate)} drafts passed the screen.",)))
        shown = sorted(gate, key=lambda d: (d.get("group") or "", d.get("rank") or 0))[:_MAX_TABLE_ROWS]
        section.blocks.append(Table(
            ("draft", "group", "screen score", "rank", "kept", "screen scores"),
            tuple((d["draft_gen_id"], _cell(d.get("group")), _num(d.get("screen_score")),
                   f"{d.get('rank')} of {d.get('group_size')}", "yes" if d.get("passed") else "gated",
                   "; ".join(f"{s['evaluator']}: {_num(s.get('score'))}" for s in d.get("scores") or []))
                  for d in shown),
            f"First {len(shown)} of {len(gate)}; all are in rounds.json." if len(gate) > len(shown) else None,
        ))
    return section


ANALYSIS_PLOTS = {"forest": "analysis_forest.png", "agreement": "analysis_agreement.png",
                  "variance": "analysis_variance.png"}
_SHOWN_ESSAYS = 10


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"[{low:.2f}, {high:.2f}]"


def _with_ci(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{_num(value)} ({_ci(low, high)})" if low is not None else f"{_num(value)} (too few to say)"


def _levels_section(analysis: Analysis, plots: dict[str, bytes | None]) -> Section:
    """Level means and the family-adjusted differences, with what they estimate."""
    section = Section("Levels and differences")
    design = analysis.design
    unit = "draft" if design is not None and design.unit == "draft" else "essay"
    section.blocks.append(Para((
        f"A level's mean estimates the expected score of a new {unit} of that level on this cohort's combinations, "
        "averaged over its essay templates and its evaluator panel. Intervals treat the "
        f"{unit} as the unit (essays of one draft share its text)"
        + (f", with the variance of {unit}s within combination × template cells ({design.df} degrees of freedom, "
           f"{'pooled within-cell' if design.model == 'cells' else 'additive-model'} variance)" if design else "")
        + ". A level with fewer than two units gets no interval (too few to say).",)))
    if plots.get("forest"):
        section.blocks.append(Image("level means with confidence intervals", ANALYSIS_PLOTS["forest"], plots["forest"]))
    if analysis.differences:
        rows = []
        for factor in analysis.factors:
            diffs = [d for d in analysis.differences if d.factor == factor]
            if not diffs:
                continue
            clear = [d for d in diffs if d.excludes_zero]
            family = max(d.family_size for d in diffs)
            kind = "generation" if factor in analysis.generation_axes else "evaluation (calibration)"
            rows.append((factor, kind, str(len(diffs)), str(family), diffs[0].method,
                         ", ".join(f"{d.level_a} − {d.level_b}: {_num(d.difference)} ({_ci(d.ci_low, d.ci_high)})"
                                   for d in clear[:3]) or "none"))
        section.blocks.append(Para((
            "Each factor's differences are one family: their 95% intervals are simultaneous (adjusted for the number "
            "of comparisons shown), so the chance that any interval of the family misses its true difference is "
            "at most 5%. A difference whose adjusted interval excludes 0 is listed below; differences.csv has all, "
            "with the unadjusted intervals beside. With more than 12 levels each level is compared with the mean of "
            "all levels, never with the observed best (which the data chose).",)))
        section.blocks.append(Table(("factor", "axis", "comparisons", "adjusted for", "method",
                                     "intervals excluding 0"), tuple(rows)))
    return section


def _humans_section(analysis: Analysis) -> Section | None:
    """Human raters as their own panel (never pooled into the LLM statistics by default)."""
    panel = analysis.humans
    if panel is None:
        return None
    section = Section("Human raters")
    section.blocks.append(Para((
        "Human ratings are a panel of their own" + (" (and, as asked, pooled into the statistics above)."
                                                     if analysis.include_humans else
                                                     ": they do not enter the means, shares or agreement above. ")
        + "Agreement between raters is the ceiling an LLM judge can be held to; each rater's agreement with the LLM "
          "evaluators and their consensus (the evaluator-adjusted essay means) has a 95% interval.",)))
    section.blocks.append(Table(("rater", "essays rated", "mean", "scale"),
                                tuple((r.rater, str(r.n), _num(r.mean), r.scale or "") for r in panel.raters)))
    if panel.human_vs_human:
        section.blocks.append(Table(("rater", "rater", "Spearman (95% CI)", "n"),
                                    tuple((p.a, p.b, _with_ci(p.spearman, p.ci_low, p.ci_high), str(p.n))
                                          for p in panel.human_vs_human)))
    if panel.human_vs_llm:
        section.blocks.append(Table(("human", "LLM evaluator", "Spearman (95% CI)", "n"),
                                    tuple((h.human_evaluator, h.llm_evaluator, _with_ci(h.spearman, h.ci_low, h.ci_high),
                                           str(h.n)) for h in panel.human_vs_llm)))
    return section


def _tournament_section(analysis: Analysis) -> Section | None:
    """The pairwise tournament: strengths, position bias, order consistency, per-judge rows."""
    tournament = analysis.tournament
    if tournament is None:
        return None
    pooled = tournament.pooled
    section = Section("Pairwise tournament")
    humans = "pooled with the LLM judges, as asked" if tournament.include_humans else \
        "reported as judges of their own, never pooled with the LLM judges"
    section.blocks.append(Para((
        f"{pooled.n_comparisons} verdicts by {', '.join(pooled.judges)} are fitted with a Bradley–Terry model with "
        "ties (Davidson) and a first-shown effect. A strength is on the log scale, centred at 0: a difference of 1 "
        "means odds of e ≈ 2.7 to win a decisive verdict. Intervals are 95% percentile intervals of "
        f"{tournament.n_boot} resamples of essay pairs (seed {tournament.seed}; both orders of a pair stay together); "
        "P(top k) is the share of resamples in which the essay is among the k strongest. "
        f"Human judges are {humans}.",)))
    if tournament.notes:
        section.blocks.append(Bullets(tuple((f"Note: {n}",) for n in tournament.notes)))
    section.blocks.append(Table(
        ("rank", "essay", "strength", "95% CI", "P(top 1)", "P(top 5)", "wins", "losses", "ties"),
        tuple(("" if s.rank is None else str(s.rank), s.essay_gen_id, _num(s.strength), _ci(s.ci_low, s.ci_high),
               _num(s.p_top_1), _num(s.p_top_5), str(s.wins), str(s.losses), str(s.ties))
              for s in pooled.strengths[:_SHOWN_ESSAYS]),
        f"First {_SHOWN_ESSAYS} of {len(pooled.strengths)} essays; all are in tournament_strengths.csv."
        if len(pooled.strengths) > _SHOWN_ESSAYS else None,
    ))
    bias = pooled.position_bias
    facts = [f"Position bias (log-odds advantage of the essay shown first): {_with_ci(bias.estimate, bias.ci_low, bias.ci_high)}; "
             f"of two equal essays the first shown wins a decisive verdict with probability "
             f"{_with_ci(bias.p_first_wins, bias.p_first_wins_ci_low, bias.p_first_wins_ci_high)}."]
    c = pooled.consistency
    if c.n_pairs:
        facts.append(f"Order consistency: {c.n_agree} of {c.n_pairs} pairs judged in both orders by the same judge name "
                     f"the same winner ({_with_ci(c.share, c.ci_low, c.ci_high)}, Wilson); of the rest, "
                     f"{c.first_shown_both} went to the first-shown essay both times, {c.second_shown_both} to the "
                     f"second-shown, {c.tie_mixed} were a tie one way only.")
    tau = pooled.tau_with_scores
    if tau is not None:
        facts.append(f"Agreement with the score ranking: Kendall's tau {_with_ci(tau.tau, tau.ci_low, tau.ci_high)} "
                     f"over {tau.n} essays with both a strength and a score mean.")
    section.blocks.append(Bullets(tuple((f,) for f in facts)))
    section.blocks.append(Table(
        ("judge", "verdicts", "position bias (95% CI)", "P(tie), equal essays", "consistent pairs", "tau with scores"),
        tuple((j.judge, str(j.n_comparisons), _with_ci(j.position_bias.estimate, j.position_bias.ci_low,
                                                        j.position_bias.ci_high),
               _num(j.tie_probability), f"{j.consistency.n_agree}/{j.consistency.n_pairs}",
               _with_ci(j.tau_with_scores.tau, j.tau_with_scores.ci_low, j.tau_with_scores.ci_high)
               if j.tau_with_scores else "") for j in tournament.judges),
    ))
    return section


def _analysis_sections(analysis: Analysis, cohort_id: str, plots: dict[str, bytes | None]) -> list[Section]:
    """Confidence, agreement, variance, diversity and tournament sections (see docs/analysis.md)."""
    files = f"{_TO_ROOT}results/{cohort_id}/analysis/"
    tournament = _tournament_section(analysis)
    if analysis.n_scores == 0:
        return [Section("Analysis", [Para((f"Not available: {analysis.alpha_note or 'no scores'}.",))]),
                *([tournament] if tournament is not None else [])]
    on = f"on {analysis.scale}" if analysis.scale else "on the scores' own scale"
    ranking = Section("Ranking with confidence")
    ranking.blocks.append(Para((
        f"Essay means {on} are evaluator-adjusted: each is the essay's expected score over the evaluator panel, "
        "from a model with an effect per essay and a calibration offset per evaluator, so a harsh or lenient "
        "evaluator moves no essay. Intervals are 95% t intervals of that model; P(top k) is the share of "
        f"{analysis.n_boot} draws from the fitted model (seed {analysis.seed}) in which the essay ranks in the "
        "top k: how sure its place is given the scatter of scores, not a probability that it is truly the best. ",
        analysis.top_tie.sentence(),
    )))
    ks = analysis.top_k
    ranking.blocks.append(Table(
        ("rank", "essay", "mean", "95% CI", "n", *(f"P(top {k})" for k in ks)),
        tuple((str(r), e.essay_gen_id, _num(e.mean), _ci(e.ci_low, e.ci_high), str(e.n),
               *(_num(e.p_top.get(k)) for k in ks))
              for r, e in enumerate(analysis.essays[:_SHOWN_ESSAYS], start=1)),
        f"First {_SHOWN_ESSAYS} of {analysis.n_essays} essays; all are in essays.csv." if analysis.n_essays > _SHOWN_ESSAYS else None,
    ))
    sections = [ranking, *([tournament] if tournament is not None else []), _levels_section(analysis, plots)]

    agreement = Section("Evaluator agreement")
    if analysis.alpha is not None:
        low, high = analysis.alpha_ci or (None, None)
        agreement.blocks.append(Para((
            f"Krippendorff's alpha (interval) = {analysis.alpha:.2f}, 95% CI {_ci(low, high)}: 1 is perfect agreement, "
            "0 is no more agreement than chance. An evaluator is flagged only when the whole 95% interval of its "
            "Spearman correlation with the mean of the others lies below 0.3; a wide interval in a small cohort is "
            "too few essays to say, not a bad evaluator. The offset is how much higher than the panel average an "
            "evaluator scores the same essay (calibration, removed from the essay means).",)))
    else:
        agreement.blocks.append(Para((f"Agreement is {analysis.alpha_note}.",)))
    agreement.blocks.append(Table(
        ("evaluator", "n", "offset", "corr. with consensus (95% CI)", "flagged", "repeated essays", "replicate sd",
         "ICC (95% CI)"),
        tuple((e.evaluator, str(e.n), _num(e.offset), _with_ci(e.corr_with_consensus, e.corr_ci_low, e.corr_ci_high),
               "yes" if e.flagged else "", str(e.n_repeated), _num(e.replicate_sd),
               _with_ci(e.icc, e.icc_ci_low, e.icc_ci_high)) for e in analysis.evaluators),
    ))
    if plots.get("agreement"):
        agreement.blocks.append(Image("agreement heatmap", ANALYSIS_PLOTS["agreement"], plots["agreement"]))
    sections.append(agreement)
    humans = _humans_section(analysis)
    if humans is not None:
        sections.append(humans)

    variance = Section("Variance by axis")
    variance.blocks.append(Para((analysis.top_factor_sentence if analysis.variance else
                                 "Not estimated (fewer than two essays).",)))
    if analysis.variance:
        variance.blocks.append(Para((
            "Shares are ANOVA variance components of one score. Generation axes (how the essay was made) are "
            "candidates for the axis that matters; evaluation axes and evaluator are calibration. essay is what the "
            "axes leave unexplained between essays. "
            + ("With replicates, the rest splits into essay x evaluator (systematic disagreement of an evaluator "
               "about an essay) and replicate (the scatter of one evaluator's repeated scores)."
               if analysis.variance_of("replicate") is not None else
               "residual holds both systematic essay × evaluator disagreement and run-to-run noise: without "
               "replicates the two cannot be told apart."),)))
    if plots.get("variance"):
        variance.blocks.append(Image("variance shares", ANALYSIS_PLOTS["variance"], plots["variance"]))
    if analysis.variance:
        variance.blocks.append(Table(
            ("component", "varies over", "variance", "share", "95% CI"),
            tuple((v.component, v.unit, _num(v.variance, 3), _num(v.share), _ci(v.ci_low, v.ci_high))
                  for v in analysis.variance),
        ))
    if analysis.design_advice is not None:
        variance.blocks.append(Para(("Planning the next cohort: ", analysis.design_advice.sentence)))
    sections.append(variance)
    judges = getattr(analysis.judges, "sentences", None)
    if callable(judges):
        lines = judges()
        if lines:
            sections.append(Section("Judge diagnostics", [Bullets(tuple((line,) for line in lines))]))

    if analysis.diversity is not None:
        diversity = analysis.diversity
        section = Section("Diversity and near-duplicates")
        essays = [c for c in diversity.clusters if c.kind == "essay"]
        duplicates = [c for c in essays if c.cluster_size > 1]
        section.blocks.append(Para((
            f"{len({c.cluster for c in essays})} distinct clusters among {len(essays)} essays "
            f"({diversity.method} similarity >= {diversity.threshold:g} links near-duplicates); "
            f"{len(duplicates)} essays have a near-duplicate.",)))
        section.blocks.append(_frame_table(diversity.by_level, "levels"))
        if diversity.target:
            closest = sorted((c for c in essays if c.target_similarity is not None),
                             key=lambda c: -(c.target_similarity or 0.0))[:5]
            section.blocks.append(Para((f"Essays that share the most wording with the target text "
                                        f"{Path(diversity.target).name} ({diversity.method} similarity; shared wording "
                                        "is not the same idea, and a different wording of the idea scores low):",)))
            section.blocks.append(Table(("essay", "similarity"),
                                        tuple((c.gen_id, _num(c.target_similarity)) for c in closest)))
        sections.append(section)

    if analysis.notes:
        sections[0].blocks.append(Bullets(tuple((f"Note: {n}",) for n in analysis.notes)))
    sections[-1].blocks.append(Para(("All analysis tables: ", Link("results/…/analysis/", files))))
    return sections


# -- renderers ------------------------------------------------------------------------------
def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f"[{_md_escape(cell.text)}]({cell.href})"
    return _md_escape(cell)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("[", "\\[").replace("]", "\\]")


def render_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """The report as GitHub-flavoured Markdown (the image is linked, not embedded)."""
    out = [f"# {title}", "", subtitle, ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Para):
                out += ["".join(_md_cell(p) for p in block.parts), ""]
            elif isinstance(block, Bullets):
                out += [f"- {''.join(_md_cell(p) for p in item)}" for item in block.items] + [""]
            elif isinstance(block, Image):
                out += [f"![{block.alt}]({block.href})", ""]
            else:
                if not block.header:
                    continue
                out.append("| " + " | ".join(_md_escape(h) for h in block.header) + " |")
                out.append("|" + "---|" * len(block.header))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
                out.append("")
                if block.note:
                    out += [f"*{block.note}*", ""]
    return "\n".join(out).rstrip() + "\n"


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href)}">{html.escape(cell.text)}</a>'
    return html.escape(cell)


_CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%}.note{color:#666;font-style:italic}"""


def render_html(title: str, subtitle: str, sections: list[Section]) -> str:
    """The report as one self-contained HTML page (the plot embedded as base64)."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(subtitle)}</p>"]
    for section in sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Para):
                out.append(f"<p>{''.join(_html_cell(p) for p in block.parts)}</p>")
            elif isinstance(block, Bullets):
                out.append("<ul>" + "".join(f"<li>{''.join(_html_cell(p) for p in i)}</li>" for i in block.items) + "</ul>")
            elif isinstance(block, Image):
                data = base64.b64encode(block.png).decode("ascii")
                out.append(f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">')
            else:
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in block.rows)
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
                if block.note:
                    out.append(f'<p class="note">{html.escape(block.note)}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- entry points ---------------------------------------------------------------------------
def write_cohort_report(
    data_root: str | os.PathLike[str] | Path, cohort_id: str, top_n: int = 5, *, seed: int = 0, n_boot: int | None = None
) -> CohortReport:
    """Compute every results table of ``cohort_id``, export them as CSV under
    ``results/<cohort_id>/``, copy the top ``top_n`` essays, draw the score plot and write
    ``report.md`` and ``report.html`` under ``cohorts/<cohort_id>/reports/``.

    Failed and missing generations are reported as such. Raises
    :class:`~daydreaming_dagster.results.cohort.CohortNotFoundError` when the cohort does not
    exist or has no membership.
    """
    cohort = load_cohort_records(data_root, cohort_id)
    scores = scores_from_records(cohort, concepts_by_combo(data_root))
    generations = generations_table(cohort)
    aggregates = essay_aggregates(scores)
    pivot = evaluator_pivot(scores)
    summaries = template_model_summaries(scores)
    top = export_top_essays(data_root, cohort_id, aggregates, top_n)
    csv_files = export_tables(data_root, cohort_id, {
        "evaluation_scores": scores,
        "essay_aggregates": aggregates,
        "evaluator_pivot": pivot,
        "template_model_summaries": summaries,
        "generations": generations,
    })
    # The analysis first: it may bring the figures an analysis child process drew, this one too.
    analysis, analysis_files, analysis_plots = _write_analysis(data_root, cohort_id, seed, n_boot)
    plot_path = write_score_plot(data_root, cohort_id, scores)
    sections = _sections(cohort, scores, generations, aggregates, pivot, summaries, top, csv_files, plot_path.read_bytes(),
                         analysis, analysis_plots)
    title = f"DayDreaming cohort {cohort_id}"
    subtitle = f"Generated {datetime.now(UTC).isoformat(timespec='seconds').replace('+00:00', 'Z')} from the gens store."
    reports_dir = Paths.from_str(data_root).cohort_reports_dir(cohort_id)
    report_md = reports_dir / REPORT_MD
    report_html = reports_dir / REPORT_HTML
    _storage.atomic_write_text(report_md, render_markdown(title, subtitle, sections))
    _storage.atomic_write_text(report_html, render_html(title, subtitle, sections))
    return CohortReport(
        cohort_id=cohort_id,
        report_md=report_md,
        report_html=report_html,
        plot_png=plot_path,
        csv_files=csv_files,
        top_essays=top,
        stage_summary=stage_summary(generations),
        n_evaluations=scores.height,
        n_scored=scores.filter(pl.col("parse_status") == "ok").height,
        analysis=analysis,
        analysis_files=analysis_files,
    )


def _write_analysis(
    data_root: str | os.PathLike[str] | Path, cohort_id: str, seed: int, n_boot: int | None
) -> tuple[Analysis, dict[str, Path], dict[str, bytes | None]]:
    """Analyse the cohort, write ``results/<cohort>/analysis/`` and the analysis plots."""
    # Imported here: importing the report (the CLI, the assets) does not load the analysis and
    # its numerical libraries until a report is written.
    from ..analysis import DEFAULT_BOOTSTRAP, Analysis, AnalysisInputError, write_analysis
    from ..analysis._api import analyze_cohort_keyed
    from ..analysis._prefetch import collect_figures

    try:
        key, analysis = analyze_cohort_keyed(data_root, cohort_id, seed=seed, n_boot=n_boot or DEFAULT_BOOTSTRAP)
    except AnalysisInputError as exc:  # no score yet: the report says so
        key, analysis = None, Analysis.empty(str(exc))
    if key is not None:
        collect_figures(key)
    files = write_analysis(data_root, cohort_id, analysis)
    plots = _analysis_plots(analysis, key)
    reports_dir = Paths.from_str(data_root).cohort_reports_dir(cohort_id)
    for name, png in plots.items():
        if png is not None:
            _storage.atomic_write_bytes(reports_dir / ANALYSIS_PLOTS[name], png)
    return analysis, files, plots


def _analysis_plot_key(name: str, analysis_key: str) -> str:
    # An analysis is a function of its inputs' key (see analysis._api._analysis_key), so its
    # plots are too.
    return content_key(f"analysis-plot-{name}", analysis_key)


def _analysis_plots(analysis: Analysis, key: str | None, *, use_cache: bool = True) -> dict[str, bytes | None]:
    """The report's analysis plots by name (none without scores), each taken from the figure
    cache when drawn from the analysis of the same inputs, else drawn now."""
    from .analysis_plots import agreement_heatmap, forest_plot, variance_bars

    if not analysis.n_scores:
        return {}
    plots: dict[str, bytes | None] = {}
    for name, draw in (("forest", forest_plot), ("agreement", agreement_heatmap), ("variance", variance_bars)):
        found, png = recall(_analysis_plot_key(name, key)) if key is not None and use_cache else (False, None)
        plots[name] = png if found else draw(analysis)
    return plots


def prerender_figures(data_root: str | os.PathLike[str] | Path, cohort_id: str, analysis_key: str,
                      analysis: Analysis) -> dict[str, bytes | None]:
    """Every figure :func:`write_cohort_report` would draw for this cohort and analysis, by
    figure-cache key (for :mod:`~.figure_cache`; the analysis child process calls this)."""
    cohort = load_cohort_records(data_root, cohort_id)
    scores = scores_from_records(cohort, concepts_by_combo(data_root))
    title = score_plot_title(cohort_id)
    figures: dict[str, bytes | None] = {score_plot_key(scores, title): render_score_distributions(scores, title=title)}
    for name, png in _analysis_plots(analysis, analysis_key, use_cache=False).items():
        figures[_analysis_plot_key(name, analysis_key)] = png
    return figures


def build_report(data_root: str | os.PathLike[str] | Path, cohort_id: str, top_n: int = 5) -> Path:
    """Write the cohort's report (see :func:`write_cohort_report`) and return ``report.md``'s path."""
    return write_cohort_report(data_root, cohort_id, top_n).report_md
