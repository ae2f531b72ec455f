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

import polars as pl

from ..data_layer import GensDataLayer, Paths, _storage
from ..types import STAGES
from ..web.urls import cohort_url, essay_url
from .aggregates import (
    SUMMARY_DIMENSIONS,
    essay_aggregates,
    evaluator_pivot,
    template_model_summaries,
)
from .cohort import CohortRecords, generations_table, load_cohort_records
from .export import export_tables
from .plots import PLOT_FILENAME, write_score_plot
from .scores import concepts_by_combo, scores_from_records
from .top import TopEssays, export_top_essays

__all__ = [
    "REPORT_HTML",
    "REPORT_MD",
    "CohortReport",
    "build_report",
    "stage_summary",
    "write_cohort_report",
]

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
_MAX_TABLE_ROWS = 50
# The report lives in cohorts/<id>/reports/, three levels below the data root.
_TO_ROOT = "../../../"
STATUSES = ("ok", "parse_error", "raw_failed", "missing")


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


def stage_summary(generations: pl.DataFrame) -> pl.DataFrame:
    """Per stage (member generations only): ``members``, one count per status, ``cost_usd``
    and token totals from raw metadata (rejected outputs included: they were paid for)."""
    members = generations.filter(pl.col("member"))
    rows = []
    for stage in STAGES:
        frame = members.filter(pl.col("stage") == stage)
        counts = {status: frame.filter(pl.col("status") == status).height for status in STATUSES}
        rows.append({
            "stage": stage,
            "members": frame.height,
            **counts,
            "cost_usd": float(frame["cost_usd"].sum() or 0.0),
            "prompt_tokens": int(frame["prompt_tokens"].sum() or 0),
            "completion_tokens": int(frame["completion_tokens"].sum() or 0),
            "total_tokens": int(frame["total_tokens"].sum() or 0),
        })
    return pl.DataFrame(rows)


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
    overview.blocks.append(_frame_table(per_stage.with_columns(cost_text), "stages"))
    scales = sorted(s for s in scored["scale"].unique().to_list() if s)
    if len(scales) > 1:
        overview.blocks.append(Para((f"Warning: scores use different scales ({', '.join(scales)}); "
                                     "compare means within one scale only.",)))
    overview.blocks.append(Para((
        "Read, compare and rate the essays in the explorer (start it with `uv run daydream view`): ",
        Link(cohort_url(cohort.cohort_id), cohort_url(cohort.cohort_id)),
    )))
    sections.append(overview)

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

    failed = generations.filter(pl.col("member") & (pl.col("status") != "ok"))
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
def write_cohort_report(data_root: str | os.PathLike[str] | Path, cohort_id: str, top_n: int = 5) -> CohortReport:
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
    plot_path = write_score_plot(data_root, cohort_id, scores)
    sections = _sections(cohort, scores, generations, aggregates, pivot, summaries, top, csv_files, plot_path.read_bytes())
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
    )


def build_report(data_root: str | os.PathLike[str] | Path, cohort_id: str, top_n: int = 5) -> Path:
    """Write the cohort's report (see :func:`write_cohort_report`) and return ``report.md``'s path."""
    return write_cohort_report(data_root, cohort_id, top_n).report_md
