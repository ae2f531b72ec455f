"""What the explorer's pages show, computed from the results layer (no web framework here).

A :class:`CohortView` is built once per cohort from :func:`~..results.load_cohort_records` and
the scores table, and cached by :class:`ExplorerStore` until the cohort's membership, manifest,
scores export or analysis tables change (or a page asks for a refresh), so a page of a
10,000-essay cohort is a polars filter, sort and slice. Essay texts and evaluator responses
are read per page through the data layer.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from markupsafe import Markup, escape

from ..analysis import AnalysisInputError, human_llm_agreement
from ..catalogs import load_concept_description, load_concepts
from ..cohorts import discover_cohorts
from ..combos import ComboRecord, read_combo_mappings
from ..data_layer import GensDataLayer, Paths
from ..errors import DaydreamError
from ..ids import is_valid_gen_id
from ..results.aggregates import essay_aggregates, evaluator_pivot
from ..results.cohort import (
    CohortRecords,
    GenerationRecord,
    generations_table,
    load_cohort_records,
    stage_summary,
)
from ..results.human_comparisons import ComparisonsFile, read_comparisons
from ..results.human_ratings import HumanRating, RatingsFile, ratings_frame, read_ratings
from ..results.scales import DEFAULT_SCALE
from ..results.scores import scores_from_records
from ..types import Stage
from .pairwise import COMPARISON_STAGE, PairVerdicts, pair_index, pair_verdicts

__all__ = [
    "ANALYSIS_COLUMNS",
    "Agreement",
    "ESSAY_AXES",
    "CohortSummary",
    "CohortView",
    "EssayDetail",
    "EssayPage",
    "EssayQuery",
    "EvaluationView",
    "ExplorerStore",
    "GenerationText",
    "Neighbours",
    "TABLE_PARAMS",
    "blind_order",
    "column_help",
    "essay_detail",
    "essay_neighbours",
    "query_essays",
]

ESSAY_AXES: tuple[str, ...] = (
    "combo_id",
    "draft_template",
    "draft_llm",
    "draft_replicate",
    "essay_template",
    "essay_llm",
    "essay_replicate",
)
"""Spec axes an essay has a level of (the columns the essay table filters on)."""
BLIND_HIDDEN = frozenset({"draft_template", "draft_llm", "essay_template", "essay_llm"})
"""Axes hidden in blind mode (model and template names)."""
ANALYSIS_COLUMNS = ("ci_low", "ci_high", "p_top_1", "p_top_5", "p_top_10")
"""Columns taken from the analysis layer's ``results/<cohort>/analysis/essays.csv`` when it exists."""
SORTABLE = ("rank", "title", "essay_gen_id", "mean", "n", "spread", "human_mean", "human_n", "status",
            "concepts", *ESSAY_AXES, *ANALYSIS_COLUMNS)
EVALUATOR_COLUMN_PREFIX = "score:"
"""Essay-table columns ``score:<evaluator>``: that evaluator's mean score of the essay."""
TABLE_PARAMS: tuple[str, ...] = (*ESSAY_AXES, "q", "sort", "desc")
"""Query parameters that define the table's rows and order (kept from the table to an essay page,
so previous/next walk the same list, and back)."""
PAGE_SIZE = 50
_READ_WORKERS = 8
_TITLE_CHARS = 120

COLUMN_HELP: dict[str, str] = {
    "title": "The essay's first heading, else its first line that is not a preamble such as \"Sure! Here's…\"",
    "rank": "Position by mean LLM score (1 = best; ties share the better rank)",
    "essay_gen_id": "The essay's generation id (its folder under gens/essay/)",
    "mean": "Mean of the LLM evaluators' parsed scores of this essay",
    "ci_low": "Lower end of the 95% interval of the essay's mean, from the analysis (results/<cohort>/analysis)",
    "ci_high": "Upper end of the 95% interval of the essay's mean, from the analysis",
    "p_top_1": "Probability that this essay is the best one, from the analysis (resampling)",
    "p_top_5": "Probability that this essay is among the 5 best, from the analysis (resampling)",
    "p_top_10": "Probability that this essay is among the 10 best, from the analysis (resampling)",
    "n": "Number of parsed LLM scores of this essay",
    "spread": "Highest minus lowest LLM score of this essay: how much the evaluators disagree",
    "human_mean": "Mean of the human ratings of this essay (latest rating per rater)",
    "human_n": "Number of people who rated this essay (latest rating per rater)",
    "concepts": "The concepts the essay's combination links",
    "status": "State of the essay's generation: ok, parse_error, raw_failed or missing",
    "combo_id": "The concept combination",
    "draft_template": "Template of the draft (the first stage)",
    "draft_llm": "Model that wrote the draft",
    "draft_replicate": "Replicate number of the draft (same inputs, another sample)",
    "essay_template": "Template that turned the draft into the essay",
    "essay_llm": "Model that wrote the essay ((copy): the draft copied as is)",
    "essay_replicate": "Replicate number of the essay",
}
"""What each essay-table column means (the header tooltips)."""


def column_help(column: str) -> str:
    """The tooltip of an essay-table column."""
    if column.startswith(EVALUATOR_COLUMN_PREFIX):
        evaluator = column[len(EVALUATOR_COLUMN_PREFIX):]
        return f"Score given by {evaluator} (mean over its replicates); click a score to read its reasons"
    return COLUMN_HELP.get(column, column)


# -- the cached cohort -----------------------------------------------------------------------
@dataclass(frozen=True)
class CohortSummary:
    """One line of the cohort list."""

    cohort_id: str
    built: bool
    """False when the cohort has a spec but no membership yet."""
    counts: dict[str, int] = field(default_factory=dict)
    ok: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    status: str = "not built"
    n_ratings: int = 0
    error: str | None = None


@dataclass
class CohortView:
    """Everything about one cohort that pages filter and slice (built once, then cached)."""

    cohort_id: str
    records: CohortRecords
    scores: pl.DataFrame
    """The results layer's scores table (one row per evaluation)."""
    essays: pl.DataFrame
    """One row per member essay: lineage, axes, aggregates, analysis columns, title, search text."""
    stages: pl.DataFrame
    """Per stage: members, counts per status, cost and tokens."""
    scale: str
    """The cohort's evaluation scale (most common among parsed scores)."""
    levels: dict[str, list[str]]
    """Every axis of :data:`ESSAY_AXES` with its levels (axes with one level included)."""
    has_analysis: bool
    combos: dict[str, ComboRecord]
    """Every registered combination (concept ids and description level)."""
    concept_names: dict[str, str]
    built_at: float
    build_seconds: float
    evaluators: list[str] = field(default_factory=list)
    """LLM evaluators with at least one score (each an essay-table column ``score:<evaluator>``)."""
    queue_orders: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False)
    """Rating-queue orders by seed, computed once per view (:func:`blind_order`)."""

    @functools.cached_property
    def titles(self) -> dict[str, str]:
        """``essay_gen_id → title`` (for pages that name essays outside the table)."""
        return dict(self.essays.select("essay_gen_id", "title").iter_rows())

    @functools.cached_property
    def comparison_pairs(self) -> dict[frozenset[str], list[str]]:
        """``{essay pair: comparison ids}`` over the cohort's comparison members, either order
        (:func:`~.pairwise.pair_index`; built on first use, once per view)."""
        members = self.records.members.get(COMPARISON_STAGE, [])  # type: ignore[call-overload]
        return pair_index(self.records.data_root, list(members), self.records.records)

    def pair(self, left: str, right: str, human: ComparisonsFile) -> PairVerdicts:
        """The judges' verdicts and the human preferences of one pair, as the compare page
        shows it (``left`` = A, ``right`` = B)."""
        ids = self.comparison_pairs.get(frozenset((left, right)), [])
        return pair_verdicts(self.records.data_root, left, right, ids, human.comparisons)

    @property
    def evaluator_columns(self) -> list[str]:
        return [f"{EVALUATOR_COLUMN_PREFIX}{e}" for e in self.evaluators]

    @functools.cached_property
    def _level_options(self) -> dict[str, str]:
        # Rendered once per view: a 10,000-essay cohort has thousands of combinations, and
        # rendering their <option>s on every request would cost more than the rest of the page.
        return {
            axis: "".join(f'<option value="{escape(level)}">{escape(self.level_label(axis, level))}</option>'
                          for level in levels)
            for axis, levels in self.levels.items()
        }

    def level_options(self, axis: str, selected: str | None = None) -> Markup:
        """The ``<option>`` elements of an axis filter (labels from :meth:`level_label`), with
        ``selected`` marked."""
        options = self._level_options.get(axis, "")
        if selected:
            marker = f'<option value="{escape(selected)}">'
            options = options.replace(marker, marker[:-1] + " selected>", 1)
        return Markup(options)

    def level_label(self, axis: str, level: str) -> str:
        """How a level is shown: a combination by its concepts' names, any other level as is."""
        if axis != "combo_id":
            return level
        record = self.combos.get(level)
        if record is None:
            return level
        return " + ".join(self.concept_names.get(c, c) for c in record.concept_ids)

    @property
    def summary(self) -> CohortSummary:
        counts = {row["stage"]: row["members"] for row in self.stages.iter_rows(named=True)}
        ok = {row["stage"]: row["ok"] for row in self.stages.iter_rows(named=True)}
        failed = int(self.stages.select(pl.col("parse_error") + pl.col("raw_failed")).sum().item())
        missing = int(self.stages["missing"].sum()) + int(self.stages["held"].sum())
        withheld = int(self.stages.select(pl.col("gated") + pl.col("unselected")).sum().item())
        if failed == 0 and missing == 0:
            status = "complete"
        elif sum(ok.values()) == 0 and failed == 0:
            status = "not run"
        else:
            status = f"{sum(ok.values())} ok, {failed} failed, {missing} not run"
        if withheld:
            # Held back on purpose by a gate or adaptive evaluation: neither failed nor missing.
            status += f" ({withheld} gated or not chosen)"
        return CohortSummary(
            cohort_id=self.cohort_id,
            built=True,
            counts=counts,
            ok=ok,
            cost_usd=float(self.stages["cost_usd"].sum()),
            status=status,
        )

    def has_essay(self, essay_gen_id: str) -> bool:
        return essay_gen_id in self.records.members.get("essay", [])

    def constant_axes(self) -> dict[str, str]:
        """Axes with exactly one level (the same for every essay: shown once, not as columns)."""
        return {axis: levels[0] for axis, levels in self.levels.items() if len(levels) == 1}

    def axis_levels(self, blind: bool = False) -> dict[str, list[str]]:
        """Axes with more than one level (the only ones worth a filter)."""
        return {axis: levels for axis, levels in self.levels.items()
                if len(levels) > 1 and not (blind and axis in BLIND_HIDDEN)}


def _safe_read(reader: Callable[[Stage, str], str], stage: Stage, gen_id: str) -> str | None:
    try:
        return reader(stage, gen_id)
    except (FileNotFoundError, ValueError):
        return None


# Lines models put before the essay itself: "[synthetic text …]", "Sure! Here's the essay:",
# "Certainly. Below is…", "Here is a revised version…", "Okay, …", and separators.
_PREAMBLE = re.compile(
    r"^(\[.*\]|\(.*\)|(sure|certainly|of course|okay|ok|absolutely|great)\b.*|"
    r"(here'?s|here is|here are|below is|below are|the following)\b.*|.*:|[-*_=~`#]+)$",
    re.IGNORECASE,
)
_TITLE_LABEL = re.compile(r"^(title|essay title)\s*:\s*", re.IGNORECASE)


def _plain(line: str) -> str:
    """A Markdown line as plain text: no heading marks, emphasis, quote marks or label."""
    line = line.strip().lstrip("#>").strip()
    line = re.sub(r"^([-*+]|\d+[.)])\s+", "", line)  # a list item's marker
    line = _TITLE_LABEL.sub("", line)
    line = re.sub(r"(\*\*|__|\*|_|`)(.+?)\1", r"\2", line)
    return line.strip().strip('"“”').strip()


def _title(text: str | None) -> str:
    """The essay's title for tables and headings: its first Markdown heading, else its first
    line that is not a preamble ("[synthetic text …]", "Sure! Here's …", "Title:" labels are
    dropped), cut at :data:`_TITLE_CHARS`."""
    if not text:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    heading = next((_plain(line) for line in lines if line.startswith("#") and _plain(line)), None)
    if heading is None:
        labelled = next((_plain(line) for line in lines if _TITLE_LABEL.match(line.strip("*_ "))), None)
        prose = (_plain(line) for line in lines if not _PREAMBLE.match(_plain(line) or line))
        heading = labelled or next((line for line in prose if line), None) or _plain(lines[0]) if lines else ""
    title = heading or ""
    return title if len(title) <= _TITLE_CHARS else title[: _TITLE_CHARS - 1] + "…"


def _read_essay_texts(layer: GensDataLayer, essay_ids: list[str]) -> list[str | None]:
    if len(essay_ids) < 2 * _READ_WORKERS:
        return [_safe_read(layer.read_parsed, "essay", g) for g in essay_ids]
    with ThreadPoolExecutor(max_workers=_READ_WORKERS) as pool:
        return list(pool.map(lambda g: _safe_read(layer.read_parsed, "essay", g), essay_ids))


def _cohort_scale(scores: pl.DataFrame) -> str:
    scales = [s for s in scores.filter(pl.col("parse_status") == "ok")["scale"].to_list() if s]
    return Counter(scales).most_common(1)[0][0] if scales else DEFAULT_SCALE


def _analysis_path(paths: Paths, cohort_id: str) -> Path:
    return paths.cohort_results_dir(cohort_id) / "analysis" / "essays.csv"


def _read_analysis(paths: Paths, cohort_id: str) -> pl.DataFrame | None:
    """The analysis layer's per-essay table (CIs, top-k probabilities), when it was written."""
    path = _analysis_path(paths, cohort_id)
    if not path.is_file():
        return None
    try:
        frame = pl.read_csv(path, infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError):
        return None
    if "essay_gen_id" not in frame.columns:
        return None
    keep = [c for c in ANALYSIS_COLUMNS if c in frame.columns]
    return frame.select(
        pl.col("essay_gen_id").cast(pl.String), *(pl.col(c).cast(pl.Float64, strict=False) for c in keep)
    ).unique("essay_gen_id", keep="last")


def build_cohort_view(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> CohortView:
    """Read a cohort through the results layer and prepare its essay table.

    Raises :class:`~..results.CohortNotFoundError` for an unknown or unbuilt cohort.
    """
    started = time.perf_counter()
    paths = Paths.from_str(data_root)
    cohort = load_cohort_records(data_root, cohort_id)
    combos = read_combo_mappings(data_root)
    concepts = {combo_id: record.concept_ids for combo_id, record in combos.items()}
    try:
        concept_names = {c.concept_id: c.name for c in load_concepts(data_root).values()}
    except (DaydreamError, FileNotFoundError):
        concept_names = {}
    scores = scores_from_records(cohort, concepts)
    essay_ids = list(cohort.members.get("essay", []))
    texts = _read_essay_texts(cohort.layer, essay_ids)
    rows = []
    for essay_id, text in zip(essay_ids, texts, strict=True):
        essay = cohort.record("essay", essay_id)
        draft = cohort.parent(essay)
        combo_id = (draft.combo_id if draft else None) or essay.combo_id
        ids = concepts.get(combo_id or "", ())
        names = ", ".join(concept_names.get(c, c) for c in ids)
        title = _title(text)
        rows.append({
            "essay_gen_id": essay_id,
            "draft_gen_id": essay.parent_gen_id,
            "combo_id": combo_id,
            "concepts": names,
            "draft_template": draft.template_id if draft else None,
            "draft_llm": draft.llm_model_id if draft else None,
            "draft_replicate": str(draft.replicate) if draft and draft.replicate is not None else None,
            "essay_template": essay.template_id,
            "essay_llm": essay.llm_model_id if essay.mode != "copy" else "(copy)",
            "essay_replicate": str(essay.replicate) if essay.replicate is not None else None,
            "status": essay.status,
            "title": title,
            # The table's search finds what the table shows (title, concept names, ids) as well
            # as the text.
            "search": "\n".join((title, names, essay_id, combo_id or "", text or "")).lower(),
        })
    schema = {name: pl.String() for name in ("essay_gen_id", "draft_gen_id", "combo_id", "concepts",
                                             *ESSAY_AXES, "status", "title", "search")}
    essays = pl.DataFrame(rows, schema=schema)
    aggregates = essay_aggregates(scores).select("essay_gen_id", "rank", "mean", "n", "n_evaluators", "spread")
    essays = essays.join(aggregates, on="essay_gen_id", how="left", maintain_order="left")
    essays = essays.with_columns(pl.col("n").fill_null(0))
    per_evaluator = evaluator_pivot(scores)
    evaluators = [c for c in per_evaluator.columns if c != "essay_gen_id"]
    if evaluators:
        per_evaluator = per_evaluator.rename({e: f"{EVALUATOR_COLUMN_PREFIX}{e}" for e in evaluators})
        essays = essays.join(per_evaluator, on="essay_gen_id", how="left", maintain_order="left")
    analysis = _read_analysis(paths, cohort_id)
    if analysis is not None:
        essays = essays.join(analysis, on="essay_gen_id", how="left", maintain_order="left")
    for column in ANALYSIS_COLUMNS:
        if column not in essays.columns:
            essays = essays.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    levels = {
        axis: sorted({v for v in essays[axis].to_list() if v is not None}, key=_level_key)
        for axis in ESSAY_AXES
    }
    return CohortView(
        cohort_id=cohort_id,
        records=cohort,
        scores=scores,
        essays=essays,
        stages=stage_summary(generations_table(cohort)),
        scale=_cohort_scale(scores),
        levels=levels,
        has_analysis=analysis is not None,
        combos=combos,
        concept_names=concept_names,
        built_at=time.time(),
        build_seconds=time.perf_counter() - started,
        evaluators=evaluators,
    )


def _level_key(value: str) -> tuple[int, Any]:
    return (0, int(value)) if value.isdigit() else (1, value)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except (FileNotFoundError, OSError):
        return None


@dataclass(frozen=True)
class Agreement:
    """How each human rater's scores agree with each LLM evaluator (and the LLM consensus)."""

    rows: list[dict[str, Any]]
    """``human_evaluator, llm_evaluator, spearman, n`` (from :func:`~..analysis.human_llm_agreement`)."""
    problem: str | None = None
    """Why it could not be computed (the analysis layer's message), if it could not."""


def human_llm_rows(view: CohortView, ratings: pl.DataFrame) -> Agreement:
    """Human-vs-LLM agreement through the analysis layer, from the cached scores table and the
    current ratings (the same rows :func:`~..analysis.load_score_table` builds, without
    re-reading a large cohort from disk on every page)."""
    if ratings.is_empty():
        return Agreement(rows=[])
    columns = ["essay_gen_id", "evaluator", "score", "scale"]
    llm = view.scores.filter(
        (pl.col("parse_status") == "ok") & pl.col("score").is_not_null() & pl.col("essay_gen_id").is_not_null()
    ).select(columns)
    table = pl.concat([llm, ratings.select(columns)], how="vertical")
    try:
        return Agreement(rows=[row.to_dict() for row in human_llm_agreement(table)])
    except AnalysisInputError as exc:
        return Agreement(rows=[], problem=str(exc))


class ExplorerStore:
    """The data root as the explorer sees it: cohort views cached per cohort.

    A cached view is rebuilt when ``membership.csv``, ``manifest.json``, the scores export
    ``results/<id>/evaluation_scores.csv`` (rewritten by every report, so after each run) or the
    analysis table change, or when :meth:`cohort` is called with ``refresh=True``.

    A page never waits for a rebuild: when those files changed, :meth:`cohort` returns the view
    it has and rebuilds in a background thread (one at a time per cohort); the next page shows
    the new view. Only a cohort's first view, and an explicit refresh, are built in the caller.
    A background rebuild that fails keeps the old view and records why (:meth:`problem`); it is
    not retried until the files change again.
    """

    def __init__(self, data_root: str | os.PathLike[str] | Path) -> None:
        self.paths = Paths.from_str(data_root)
        self.data_root = self.paths.data_root
        self._views: dict[str, tuple[tuple[int | None, ...], CohortView]] = {}
        self._agreements: dict[str, tuple[tuple[float, int | None], Agreement]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.builds = 0
        """Cohort views built so far (tests and benchmarks/explorer.py check that GETs build none)."""
        self._rebuilding: set[str] = set()
        self._problems: dict[str, tuple[tuple[int | None, ...], str]] = {}
        self._idle = threading.Condition(self._guard)

    def _key(self, cohort_id: str) -> tuple[int | None, ...]:
        paths = self.paths
        return (
            _mtime(paths.cohort_membership_path(cohort_id)),
            _mtime(paths.cohort_manifest_path(cohort_id)),
            _mtime(paths.cohort_results_dir(cohort_id) / "evaluation_scores.csv"),
            _mtime(_analysis_path(paths, cohort_id)),
            _mtime(paths.cohort_rounds_path(cohort_id)),  # a gate's or an adaptive round's decisions
        )

    def _lock(self, cohort_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(cohort_id, threading.Lock())

    def cohort(self, cohort_id: str, *, refresh: bool = False) -> CohortView:
        """The cohort's view: the cached one (rebuilt in the background when its files changed),
        else built now; ``refresh=True`` rebuilds it now.

        Raises :class:`~..results.CohortNotFoundError` for an unknown or unbuilt cohort (and
        for an id that is not a valid directory name), or what reading it raised, when there is
        no view to show yet.
        """
        key = self._key(cohort_id) if is_valid_gen_id(cohort_id) else ()
        cached = self._views.get(cohort_id)
        if cached is not None and not refresh:
            if cached[0] != key:
                self._revalidate(cohort_id, key)
            return cached[1]
        with self._lock(cohort_id):
            cached = self._views.get(cohort_id)
            if cached is not None and not refresh:  # built meanwhile by another request
                return cached[1]
            return self._build(cohort_id, key)

    def _build(self, cohort_id: str, key: tuple[int | None, ...]) -> CohortView:
        view = build_cohort_view(self.data_root, cohort_id)
        with self._guard:
            self.builds += 1
            self._views[cohort_id] = (key, view)
            self._problems.pop(cohort_id, None)
        return view

    def _revalidate(self, cohort_id: str, key: tuple[int | None, ...]) -> None:
        with self._guard:
            failed = self._problems.get(cohort_id)
            if cohort_id in self._rebuilding or (failed is not None and failed[0] == key):
                return
            self._rebuilding.add(cohort_id)
        threading.Thread(target=self._rebuild_in_background, args=(cohort_id, key),
                         name=f"explorer-rebuild-{cohort_id}", daemon=True).start()

    def _rebuild_in_background(self, cohort_id: str, key: tuple[int | None, ...]) -> None:
        try:
            with self._lock(cohort_id):
                self._build(cohort_id, key)
        except Exception as exc:  # noqa: BLE001 - any failure: the old view stays, the pages say why
            with self._guard:
                self._problems[cohort_id] = (key, f"{type(exc).__name__}: {exc}")
        finally:
            with self._guard:
                self._rebuilding.discard(cohort_id)
                self._idle.notify_all()

    def problem(self, cohort_id: str) -> str | None:
        """Why the cohort's files could not be re-read after they changed (the pages then show
        the previous view), or ``None``."""
        failed = self._problems.get(cohort_id)
        return failed[1] if failed is not None else None

    def wait_for_rebuilds(self, timeout: float = 60.0) -> bool:
        """Wait until no background rebuild runs (tests, benchmarks); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._rebuilding, timeout=timeout)

    def cohort_ids(self) -> list[str]:
        """Cohorts with a spec or a membership file, sorted."""
        found = set(discover_cohorts(self.data_root))
        cohorts_dir = self.paths.cohorts_dir
        if cohorts_dir.is_dir():
            found |= {p.name for p in cohorts_dir.iterdir()
                      if is_valid_gen_id(p.name) and (p / "membership.csv").is_file()}
        return sorted(found)

    def summaries(self) -> list[CohortSummary]:
        """One :class:`CohortSummary` per cohort (unbuilt and unreadable ones included)."""
        out = []
        for cohort_id in self.cohort_ids():
            if not self.paths.cohort_membership_path(cohort_id).is_file():
                out.append(CohortSummary(cohort_id=cohort_id, built=False))
                continue
            try:
                summary = self.cohort(cohort_id).summary
            except (DaydreamError, FileNotFoundError, ValueError) as exc:
                out.append(CohortSummary(cohort_id=cohort_id, built=False, status="unreadable", error=str(exc)))
                continue
            # The same count as the cohort and ratings pages: current ratings (latest per rater
            # and essay), not lines of the file.
            out.append(dataclasses.replace(summary, n_ratings=self.current_ratings(cohort_id).height))
        return out

    def agreement(self, view: CohortView) -> Agreement:
        """Human-vs-LLM agreement of the cohort (cached until the view or the ratings change)."""
        ratings_path = self.paths.cohort_human_ratings_path(view.cohort_id)
        key = (view.built_at, _mtime(ratings_path))
        with self._lock(view.cohort_id):
            cached = self._agreements.get(view.cohort_id)
            if cached is not None and cached[0] == key:
                return cached[1]
        result = human_llm_rows(view, self.current_ratings(view.cohort_id))
        with self._lock(view.cohort_id):
            self._agreements[view.cohort_id] = (key, result)
        return result

    def ratings(self, cohort_id: str) -> RatingsFile:
        return read_ratings(self.data_root, cohort_id)

    def human_comparisons(self, cohort_id: str) -> ComparisonsFile:
        """The cohort's human pairwise preferences (read on each request, like ratings)."""
        return read_comparisons(self.data_root, cohort_id)

    def current_ratings(self, cohort_id: str) -> pl.DataFrame:
        """Latest rating per rater and essay (:func:`~..results.human_ratings.ratings_frame`)."""
        return ratings_frame(self.data_root, cohort_id)


# -- the essay table -------------------------------------------------------------------------
@dataclass(frozen=True)
class EssayQuery:
    """Filters, search, sort and page of the essay table (all from the URL)."""

    filters: dict[str, str] = field(default_factory=dict)
    """Axis → level (only axes of :data:`ESSAY_AXES`)."""
    search: str = ""
    sort: str = "rank"
    descending: bool = False
    page: int = 1
    page_size: int = PAGE_SIZE


@dataclass(frozen=True)
class EssayPage:
    """One page of the filtered, sorted essay table."""

    rows: list[dict[str, Any]]
    total: int
    """Essays matching the filters and search."""
    page: int
    pages: int


def _with_human(essays: pl.DataFrame, ratings: pl.DataFrame) -> pl.DataFrame:
    if ratings.is_empty():
        return essays.with_columns(pl.lit(None, dtype=pl.Float64).alias("human_mean"),
                                   pl.lit(0, dtype=pl.Int64).alias("human_n"))
    human = ratings.group_by("essay_gen_id").agg(
        pl.col("score").mean().alias("human_mean"), pl.len().cast(pl.Int64).alias("human_n")
    )
    return essays.join(human, on="essay_gen_id", how="left", maintain_order="left").with_columns(
        pl.col("human_n").fill_null(0)
    )


def _table(view: CohortView, query: EssayQuery, ratings: pl.DataFrame) -> pl.DataFrame:
    """Every essay matching the query's filters and search, in the query's order."""
    frame = _with_human(view.essays, ratings)
    for axis, level in query.filters.items():
        if axis in ESSAY_AXES and level:
            frame = frame.filter(pl.col(axis) == level)
    needle = query.search.strip().lower()
    if needle:
        frame = frame.filter(pl.col("search").str.contains(needle, literal=True))
    sort = query.sort if query.sort in SORTABLE or query.sort in view.evaluator_columns else "rank"
    return frame.sort([sort, "essay_gen_id"], descending=[query.descending, False], nulls_last=True)


def query_essays(view: CohortView, query: EssayQuery, ratings: pl.DataFrame) -> EssayPage:
    """Filter by axis levels and a case-insensitive search of the essay text, title, concept
    names and ids, sort (nulls last), and cut one page out. Unknown axes and sort columns are
    ignored."""
    frame = _table(view, query, ratings)
    total = frame.height
    pages = max(1, -(-total // query.page_size))
    page = min(max(1, query.page), pages)
    shown = frame.slice((page - 1) * query.page_size, query.page_size).drop("search")
    return EssayPage(rows=shown.to_dicts(), total=total, page=page, pages=pages)


@dataclass(frozen=True)
class Neighbours:
    """Where an essay sits in the essay table of a query."""

    position: int
    """0-based position in the filtered, sorted table."""
    total: int
    previous: str | None
    """The essay before it (``None`` at the top)."""
    next: str | None
    """The essay after it (``None`` at the bottom)."""
    page: int
    """The table page that shows it."""


def essay_neighbours(view: CohortView, query: EssayQuery, ratings: pl.DataFrame, essay_gen_id: str) -> Neighbours | None:
    """The essays before and after ``essay_gen_id`` in the table of ``query`` (``None`` when the
    query's filters or search leave the essay out)."""
    ids = _table(view, query, ratings)["essay_gen_id"]
    hits = (ids == essay_gen_id).arg_true()
    if hits.is_empty():
        return None
    position = int(hits[0])
    return Neighbours(
        position=position,
        total=ids.len(),
        previous=ids[position - 1] if position > 0 else None,
        next=ids[position + 1] if position + 1 < ids.len() else None,
        page=position // query.page_size + 1,
    )


# -- one essay -------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationText:
    """One generation's files and cost, as the essay page shows them."""

    stage: Stage
    gen_id: str
    template_id: str | None
    llm_model_id: str | None
    mode: str | None
    status: str
    error: str | None
    prompt: str | None
    raw: str | None
    parsed: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    note: str | None = None
    """Why a gate or adaptive evaluation held this generation back (status gated/unselected/held)."""


@dataclass(frozen=True)
class EvaluationView:
    """One evaluation of the essay."""

    generation: GenerationText
    evaluator: str
    score: float | None
    scale: str | None

    @property
    def reasons(self) -> str | None:
        """The evaluator's response (its reasoning, ending in the score line)."""
        return self.generation.raw if self.generation.raw is not None else self.generation.parsed


@dataclass(frozen=True)
class ConceptView:
    concept_id: str
    name: str
    level: str
    description: str | None


@dataclass(frozen=True)
class EssayDetail:
    """Everything the essay page shows."""

    cohort_id: str
    essay: GenerationText
    draft: GenerationText | None
    combo_id: str | None
    concepts: list[ConceptView]
    evaluations: list[EvaluationView]
    row: dict[str, Any]
    """The essay's row of the essay table (axes, rank, mean, CI)."""
    same_draft: list[dict[str, Any]]
    """Other essays of the cohort built from the same draft."""
    same_combo: list[dict[str, Any]]
    """Other essays of the cohort from the same concept combination (other drafts)."""
    total_cost_usd: float
    total_tokens: int


def _generation_text(layer: GensDataLayer, record: GenerationRecord) -> GenerationText:
    stage, gen_id = record.stage, record.gen_id
    return GenerationText(
        stage=stage,
        gen_id=gen_id,
        template_id=record.template_id,
        llm_model_id=record.llm_model_id,
        mode=record.mode,
        status=record.status,
        error=record.error,
        prompt=_safe_read(layer.read_prompt, stage, gen_id),
        raw=_safe_read(layer.read_raw, stage, gen_id),
        parsed=_safe_read(layer.read_parsed, stage, gen_id),
        prompt_tokens=record.tokens("prompt_tokens"),
        completion_tokens=record.tokens("completion_tokens"),
        cost_usd=record.cost_usd,
        note=record.withheld[1] if record.withheld is not None and record.status == record.withheld[0] else None,
    )


def _concepts(data_root: Path, view: CohortView, combo_id: str | None) -> list[ConceptView]:
    if not combo_id:
        return []
    record = view.combos.get(combo_id)
    if record is None:
        return []
    out = []
    for concept_id in record.concept_ids:
        try:
            description = load_concept_description(data_root, concept_id, record.description_level)
        except DaydreamError:
            description = None
        out.append(ConceptView(concept_id, view.concept_names.get(concept_id, concept_id),
                               record.description_level, description))
    return out


def _sibling_rows(view: CohortView, column: str, value: str | None, essay_gen_id: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    frame = view.essays.filter((pl.col(column) == value) & (pl.col("essay_gen_id") != essay_gen_id))
    return frame.drop("search").to_dicts()


def essay_detail(view: CohortView, essay_gen_id: str) -> EssayDetail:
    """The essay's lineage, texts, evaluations and siblings (``KeyError`` when it is not an
    essay of the cohort)."""
    if not view.has_essay(essay_gen_id):
        raise KeyError(essay_gen_id)
    cohort = view.records
    layer = cohort.layer
    essay_record = cohort.record("essay", essay_gen_id)
    draft_record = cohort.parent(essay_record)
    row = view.essays.filter(pl.col("essay_gen_id") == essay_gen_id).drop("search").to_dicts()[0]
    evaluations = []
    for score in view.scores.filter(pl.col("essay_gen_id") == essay_gen_id).iter_rows(named=True):
        record = cohort.record("evaluation", score["evaluation_gen_id"])
        evaluations.append(EvaluationView(
            generation=_generation_text(layer, record),
            evaluator=score["evaluator"] or "?",
            score=score["score"],
            scale=score["scale"],
        ))
    essay = _generation_text(layer, essay_record)
    draft = _generation_text(layer, draft_record) if draft_record is not None else None
    generations = [g for g in (draft, essay, *(e.generation for e in evaluations)) if g is not None]
    # A draft shared by several essays is counted in each essay's lineage cost: it is what this
    # essay needed.
    total_cost = sum(g.cost_usd or 0.0 for g in generations)
    total_tokens = sum((g.prompt_tokens or 0) + (g.completion_tokens or 0) for g in generations)
    same_draft = _sibling_rows(view, "draft_gen_id", row["draft_gen_id"], essay_gen_id)
    same_combo = [r for r in _sibling_rows(view, "combo_id", row["combo_id"], essay_gen_id)
                  if r["draft_gen_id"] != row["draft_gen_id"]]
    return EssayDetail(
        cohort_id=view.cohort_id,
        essay=essay,
        draft=draft,
        combo_id=row["combo_id"],
        concepts=_concepts(cohort.data_root, view, row["combo_id"]),
        evaluations=evaluations,
        row=row,
        same_draft=same_draft,
        same_combo=same_combo,
        total_cost_usd=total_cost,
        total_tokens=total_tokens,
    )


# -- the rating queue ------------------------------------------------------------------------
def blind_order(view: CohortView, seed: int) -> list[str]:
    """The essays to rate (those with a parsed text), in a random order fixed by ``seed`` (so a
    queue URL can be shared and reloaded)."""
    cached = view.queue_orders.get(seed)
    if cached is None:
        ids = sorted(view.essays.filter(pl.col("status") == "ok")["essay_gen_id"].to_list())
        random.Random(seed).shuffle(ids)
        if len(view.queue_orders) >= 64:  # a bounded cache: seeds come from URLs
            view.queue_orders.clear()
        cached = view.queue_orders[seed] = tuple(ids)
    return list(cached)


def rater_scores(ratings: pl.DataFrame, rater: str) -> dict[str, HumanRating]:
    """``essay_gen_id → the rater's current rating`` (from :func:`ratings_frame`)."""
    if not rater or ratings.is_empty():
        return {}
    mine = ratings.filter(pl.col("rater") == rater)
    return {
        row["essay_gen_id"]: HumanRating(
            essay_gen_id=row["essay_gen_id"], rater=row["rater"], score=row["score"], scale=row["scale"],
            note=row["note"] or "", timestamp=row["timestamp"] or "", blind=bool(row["blind"]),
        )
        for row in mine.iter_rows(named=True)
    }
