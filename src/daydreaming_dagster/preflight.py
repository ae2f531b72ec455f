"""Pre-flight: everything that can be checked before the first model call, checked at once.

A cohort run either does what its spec says or stops before paying, listing every problem:

- every template of the cohort exists in its ``<stage>_templates.csv``, has its file, parses,
  and renders (``StrictUndefined``) for every member that uses it: drafts with their own
  combination's concepts, essays and evaluations with a sample parent text (their parents do
  not exist yet);
- every template's parser exists for its stage;
- every model id is in ``llm_models.csv`` and has a usable route (a key in the environment, an
  endpoint, the explicit offline model, or the ``--offline`` opt-in): see
  :func:`~.llm.routes.plan_route`;
- max tokens and temperature of each stage that calls a model are valid.

:func:`preflight` returns a :class:`PreflightReport` (problems plus the route of every model);
callers stop with :class:`~.errors.PreflightError` when it has problems. Callers: ``daydream
run`` (and ``run --check``), ``daydream launch``, the cohort sensor before it launches a
cohort's first stage, and each stage's prompt asset (the first step of every Dagster run, for
the generations of its range). No Dagster here, and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .catalog_types import ContentCombination, ModelInfo, TemplateInfo
from .data_layer.paths import Paths
from .errors import DaydreamError, PreflightError
from .stages.settings import StageSettings
from .types import STAGES, Stage

__all__ = [
    "PREFLIGHT_METADATA_KEY",
    "PREFLIGHT_PASSED",
    "PREFLIGHT_TAG",
    "SAMPLE_PARENT_TEXT",
    "Member",
    "PreflightReport",
    "Problem",
    "cohort_preflight",
    "preflight",
]

PREFLIGHT_TAG = "daydream/preflight"
"""Run tag set by callers that checked the whole cohort before launching (``daydream run``,
``launch``): the prompt assets then skip their own check of the run's range."""
PREFLIGHT_PASSED = "passed"
PREFLIGHT_METADATA_KEY = "preflight_problems"
"""Failure metadata key of a run stopped by pre-flight (the orchestrator then launches nothing more)."""

SAMPLE_PARENT_TEXT = "(pre-flight sample: the parent generation's parsed text goes here)"
"""What essay and evaluation templates get for their parent's text when pre-flight renders them."""
MAX_TEMPERATURE = 2.0
"""The largest temperature OpenAI-compatible APIs accept."""


class Member(Protocol):
    """What pre-flight reads of one generation (a membership row or a generation's metadata)."""

    @property
    def stage(self) -> Stage: ...
    @property
    def gen_id(self) -> str: ...
    @property
    def template_id(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def llm_model_id(self) -> str | None: ...
    @property
    def combo_id(self) -> str | None: ...


@dataclass(frozen=True)
class Problem:
    """One thing that would stop (or waste) a run, and how to fix it."""

    kind: str
    """``catalog``, ``template``, ``parser``, ``model``, ``route``, ``combo`` or ``settings``."""
    file: str | None
    """The file to edit (``None`` for a setting or the environment)."""
    line: int | None
    """Line in ``file`` when known (CSV rows: header = 1)."""
    what: str
    """What is wrong, naming the value (and one member that needs it)."""
    fix: str
    """What to change."""

    def render(self) -> str:
        """One line: ``file:line: what; fix: fix``."""
        where = self.file or "settings"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.what}; fix: {self.fix}"


@dataclass(frozen=True)
class PreflightReport:
    """Every problem found, and the route each model of the cohort takes."""

    problems: tuple[Problem, ...]
    routes: tuple[Any, ...] = ()
    """:class:`~.llm.routes.RoutePlan` of each model used (catalog order)."""
    members: int = 0
    """Generations checked."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """The problems, one line each (empty when there are none)."""
        return "\n".join(p.render() for p in self.problems)

    def raise_for_problems(self, what: str = "the cohort") -> None:
        """Raise :class:`PreflightError` listing every problem, if there is any."""
        if self.problems:
            raise PreflightError(self.problems, what)


@dataclass
class _Collector:
    problems: list[Problem] = field(default_factory=list)
    seen: set[tuple[str, str | None, str]] = field(default_factory=set)

    def add(self, kind: str, file: Path | str | None, line: int | None, what: str, fix: str, *,
            key: str | None = None) -> None:
        # One line per distinct problem: thousands of members share a broken template.
        dedupe = (kind, str(file) if file else None, key or what)
        if dedupe in self.seen:
            return
        self.seen.add(dedupe)
        self.problems.append(Problem(kind, str(file) if file else None, line, what, fix))


def preflight(
    data_root: str | os.PathLike[str] | Path,
    members: Iterable[Member],
    *,
    settings: Mapping[Stage, StageSettings] | None = None,
    llm_config: Any = None,
    check_routes: bool = True,
    environ: Mapping[str, str] | None = None,
) -> PreflightReport:
    """Check ``members`` against the catalogs, the model routes and the stage ``settings``.

    Args:
        data_root: the data root (catalogs under ``1_raw/``).
        members: the generations to check (membership rows or generation metadata).
        settings: per-stage settings whose max tokens and temperature to check (``None``: skip).
        llm_config: :class:`~.llm.routes.LLMConfig` for the routes (default: from ``environ``).
        check_routes: ``False`` when the caller's model client is not the router (tests).
        environ: where keys are looked up (default ``os.environ``).

    Returns:
        A :class:`PreflightReport`; it never raises for a problem it can name.
    """
    from .catalogs import load_models, load_templates
    from .llm.routes import LLMConfig, plan_route

    paths = Paths.from_str(data_root)
    found = _Collector()
    rows = list(members)
    templates: dict[Stage, dict[str, TemplateInfo]] = {}
    for stage in {row.stage for row in rows}:
        try:
            templates[stage] = load_templates(data_root, stage)
        except DaydreamError as exc:
            found.add("catalog", paths.templates_csv(stage), None, str(exc), "fix the file as the message says")
    models: dict[str, ModelInfo] | None
    try:
        models = load_models(data_root) if any(r.llm_model_id for r in rows) else {}
    except DaydreamError as exc:
        found.add("catalog", paths.llm_models_csv, None, str(exc), "fix the file as the message says")
        models = None

    combos = _combinations(data_root, rows, found, paths)
    _check_templates(data_root, rows, templates, combos, found, paths)

    routes = []
    if models is not None:
        used = list(dict.fromkeys(r.llm_model_id for r in rows if r.mode != "copy" and r.llm_model_id))
        config = llm_config or LLMConfig.from_env(environ)
        for model_id in used:
            info = models.get(model_id)
            example = next(r for r in rows if r.llm_model_id == model_id)
            if info is None:
                known = ", ".join(sorted(models)) or "(none)"
                found.add("model", paths.llm_models_csv, None,
                          f"model id '{model_id}' (used by {example.stage} {example.gen_id}) is not in "
                          f"llm_models.csv; known ids: {known}",
                          "add a row with this id or fix the cohort spec")
                continue
            if not check_routes:
                continue
            plan = plan_route(info, config, environ)
            routes.append(plan)
            if plan.problem:
                found.add("route", paths.llm_models_csv, info.line,
                          f"model '{model_id}' (provider '{info.provider}', model '{info.model}') cannot be "
                          f"called: {plan.problem.split(';')[0]}",
                          plan.problem.split(";", 1)[1].strip() if ";" in plan.problem else plan.problem)
    if settings is not None:
        _check_settings(rows, settings, found)
    return PreflightReport(tuple(found.problems), tuple(routes), len(rows))


def _combinations(
    data_root: str | os.PathLike[str] | Path, rows: list[Member], found: _Collector, paths: Paths
) -> dict[str, ContentCombination]:
    from .combos import load_combinations

    wanted = list(dict.fromkeys(r.combo_id for r in rows if r.stage == "draft" and r.mode != "copy" and r.combo_id))
    if not wanted:
        return {}
    try:
        return load_combinations(data_root, wanted)
    except DaydreamError:
        pass  # find every broken combination, not only the first
    combos: dict[str, ContentCombination] = {}
    for combo_id in wanted:
        try:
            combos.update(load_combinations(data_root, [combo_id]))
        except DaydreamError as exc:
            found.add("combo", paths.combo_mappings_csv, None, str(exc),
                      "register the combination (the spec's combos section) or add the missing concept "
                      "and description files")
    return combos


def _check_templates(
    data_root: str | os.PathLike[str] | Path,
    rows: list[Member],
    templates: Mapping[Stage, Mapping[str, TemplateInfo]],
    combos: Mapping[str, ContentCombination],
    found: _Collector,
    paths: Paths,
) -> None:
    from .catalogs import load_template_text
    from .parsers import get_parser
    from .stages.prompt import TemplateError, render_template

    rendered: set[tuple[str, str, str | None]] = set()
    for row in rows:
        stage, template_id = row.stage, row.template_id
        if stage not in templates:
            continue  # the catalog itself is broken: already reported
        csv_path = paths.templates_csv(stage)
        info = templates[stage].get(template_id)
        if info is None:
            known = ", ".join(sorted(templates[stage])) or "(none)"
            found.add("template", csv_path, None,
                      f"{stage} template '{template_id}' (used by {row.gen_id}) is not in {stage}_templates.csv; "
                      f"known: {known}", "add the row or fix the cohort spec", key=f"{stage}/{template_id}")
            continue
        try:
            get_parser(stage, info.parser)
        except DaydreamError as exc:
            found.add("parser", csv_path, info.line, f"template '{template_id}': {exc}",
                      "name a registered parser in the 'parser' column (empty = the stage default)")
        if row.mode == "copy":
            continue  # a copy renders nothing
        # Drafts render per combination; essays and evaluations render the same sample text.
        combo_key = row.combo_id if stage == "draft" else None
        if (stage, template_id, combo_key) in rendered:
            continue
        rendered.add((stage, template_id, combo_key))
        try:
            text = load_template_text(data_root, stage, template_id)
        except DaydreamError as exc:
            found.add("template", paths.template_file(stage, template_id), None, str(exc),
                      f"create the file or fix template_id in {stage}_templates.csv", key=f"{stage}/{template_id}")
            continue
        variables = _sample_variables(stage, row, combos)
        if variables is None:
            continue  # the combination is broken: already reported
        try:
            render_template(text, variables, template_name=f"{stage}/{template_id}")
        except TemplateError as exc:
            found.add("template", paths.template_file(stage, template_id), exc.line,
                      f"{exc} (member {row.gen_id})",
                      "use only the variables listed, or fix the template's syntax",
                      key=f"{stage}/{template_id}")


def _sample_variables(stage: Stage, row: Member, combos: Mapping[str, ContentCombination]) -> dict[str, Any] | None:
    if stage == "draft":
        combination = combos.get(row.combo_id or "")
        if combination is None:
            return None
        return {"concepts": combination.contents, "combo_id": combination.combo_id}
    if stage == "essay":
        return {"draft_block": SAMPLE_PARENT_TEXT, "links_block": SAMPLE_PARENT_TEXT}
    if stage == "comparison":
        combination = combos.get(row.combo_id or "")
        concepts = list(combination.contents) if combination is not None else []
        return {"essay_a": SAMPLE_PARENT_TEXT, "essay_b": SAMPLE_PARENT_TEXT,
                "concepts_a": concepts, "concepts_b": concepts}
    return {"response": SAMPLE_PARENT_TEXT}


def _check_settings(rows: list[Member], settings: Mapping[Stage, StageSettings], found: _Collector) -> None:
    calling = {r.stage for r in rows if r.mode != "copy"}
    for stage in STAGES:
        if stage not in calling or stage not in settings:
            continue
        current = settings[stage]
        tokens = current.max_tokens
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
            found.add("settings", None, None, f"max_tokens for {stage} is {tokens!r}",
                      f"use a positive integer (StageSettingsResource.max_tokens_{stage}) or leave it unset")
        temperature = current.temperature
        if temperature is not None and not (0.0 <= float(temperature) <= MAX_TEMPERATURE):
            found.add("settings", None, None, f"temperature for {stage} is {temperature!r}",
                      f"use a value from 0 to {MAX_TEMPERATURE:g} (StageSettingsResource.temperature_{stage})")


def cohort_preflight(
    data_root: str | os.PathLike[str] | Path,
    gen_ids: Mapping[Stage, Iterable[str]],
    *,
    settings: Mapping[Stage, StageSettings] | None = None,
    llm_config: Any = None,
    check_routes: bool = True,
    environ: Mapping[str, str] | None = None,
) -> PreflightReport:
    """:func:`preflight` over generations named by id, read from their seeded ``metadata.json``
    (a built cohort's members; ids without readable metadata are left to the stage run, which
    records their failure)."""
    from .data_layer import GensDataLayer, resolve_generation_metadata

    layer = GensDataLayer.from_root(data_root)
    members = []
    for stage, ids in gen_ids.items():
        for gen_id in ids:
            try:
                members.append(resolve_generation_metadata(layer, stage, gen_id))
            except (FileNotFoundError, ValueError):
                continue
    return preflight(data_root, members, settings=settings, llm_config=llm_config,
                     check_routes=check_routes, environ=environ)
