"""The application layer: the operations a user performs, for the CLI, tests and notebooks.

Each function takes a data root and a cohort id and returns typed values (frames, plans,
outcomes); none prints. The CLI (:mod:`daydreaming_dagster.cli`) only parses arguments and
prints what these return; a notebook calls them directly::

    from daydreaming_dagster import app
    outcome = app.run("data", "demo")          # plan, run only the plan, rebuild results if changed
    scores = app.scores("data", "demo")        # polars DataFrame, one row per evaluation

Dagster is imported only when something has to run: a re-run with nothing to do (every
generation reused, results current) never loads it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .data_layer import GensDataLayer, default_data_root
from .errors import ConfigError
from .fingerprints import read_results_fingerprint, results_fingerprint, write_results_fingerprint
from .llm.base import request_stop, reset_stop, stop_requested
from .planning import CohortPlan, plan_cohort
from .types import PHASES, STAGES, Phase, Stage

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from .adaptive import Selection
    from .cohorts import CohortBuild, CompiledCohort, Membership
    from .cohorts.estimate import CohortEstimate, ModelEstimate
    from .cohorts.spec import CohortSpec
    from .cohorts.tournament import TournamentState
    from .failures import FailedGeneration
    from .preflight import PreflightReport
    from .reporting import CohortReport
    from .stages.batch import BatchReport, GenerationStatus
    from .stages.status import StageStatus

__all__ = [
    "ReportState",
    "RunOutcome",
    "StageOutcome",
    "build",
    "check",
    "data_root",
    "estimate",
    "launch",
    "load_membership_frame",
    "plan",
    "plan_cost",
    "prune_partitions",
    "reparse",
    "report",
    "request_stop",
    "reset_stop",
    "retry_failed",
    "run",
    "scores",
    "scores_pandas",
    "spending_status",
    "status",
    "stop_requested",
]

ProgressListener = Callable[[Stage, Phase, "GenerationStatus"], None]
ReportState = Literal["built", "current", "skipped", "failed"]


def data_root(path: str | Path | None = None) -> str:
    """The data root to use: ``path``, else ``$DAYDREAMING_DATA_ROOT``, else ``./data``.

    Raises :class:`~daydreaming_dagster.errors.ConfigError` when a local root does not exist.
    """
    root = str(path) if path is not None else default_data_root()
    if "://" not in root and not Path(root).is_dir():
        raise ConfigError(f"data root {root!r} does not exist; pass --data-root or set DAYDREAMING_DATA_ROOT")
    return root


# -- cohorts and plans --------------------------------------------------------------------------
def build(root: str, cohort_id: str) -> CohortBuild:
    """Compile and validate a cohort, seed its generations' metadata and write its files."""
    from .cohorts import build_cohort

    return build_cohort(root, cohort_id)


def _selected(stages: Sequence[Stage] | None) -> list[Stage]:
    return [s for s in STAGES if not stages or s in stages]


def plan(
    root: str,
    cohort_id: str,
    *,
    stages: Sequence[Stage] | None = None,
    force: Sequence[Stage] = (),
    membership: Membership | None = None,
    offline: bool = False,
) -> CohortPlan:
    """What a run of ``stages`` (default: all) with ``force`` would do, generation by generation.

    Compiles the spec in memory (nothing is written: the plan of a dry run); pass the
    ``membership`` of a build to plan against it instead (planned as given). ``offline`` plans
    as a run with ``--offline`` routes models (synthetic text for models without a key). A cohort
    whose spec gates essays or adapts evaluation is planned for its current round (the first,
    before anything ran); the plan's notes give the worst case (the full design).
    """
    notes: tuple[str, ...] = ()
    if membership is None:
        from .cohorts import compile_cohort

        compiled = compile_cohort(root, cohort_id)
        membership = compiled.membership
        selection = None
        if _has_spending(compiled.spec):
            # A gated or adaptive cohort: plan what the current round may call.
            from .adaptive import disk_outcomes, select

            selection = select(membership, disk_outcomes(GensDataLayer.from_root(root), membership),
                               adaptive=compiled.spec.adaptive, gate=compiled.spec.essay_gate,
                               seed=compiled.spec.seed or 0)
        notes = _round_notes(compiled, compiled.spec if selection is not None else None, selection)
        if selection is not None:
            membership = selection.restrict(membership)
    cohort_plan = plan_cohort(root, cohort_id, membership, stages=_selected(stages), force=force,
                              served_by=_served_by(root, offline))
    return replace(cohort_plan, notes=notes) if notes else cohort_plan


def _has_spending(spec: CohortSpec) -> bool:
    from .adaptive import has_spending

    return has_spending(spec)


def _served_by(root: str, offline: bool) -> Callable[[str], str | None]:
    """Model id -> the provider that would answer it now, from the same routes the model client
    uses (the raw reuse rule compares it with the provider of a stored output)."""
    from .catalogs import load_models
    from .llm.routes import LLMConfig, plan_routes

    config = LLMConfig.from_env(**({"offline_fallback": True} if offline else {}))
    routes = plan_routes(load_models(root), config)
    return lambda model_id: routes[model_id].served_by if model_id in routes else None


def check(root: str, cohort_id: str, *, stages: Sequence[Stage] | None = None, offline: bool = False,
          min_lines: int = 3) -> PreflightReport:
    """Pre-flight only (``run --check``): build the cohort and check that every template of the
    selected stages renders, every parser exists and every model has a route; calls nothing."""
    from .preflight import preflight
    from .resources import LLMResource, StageSettingsResource

    selected = _selected(stages)
    rows = build(root, cohort_id).membership.all_rows()
    settings = StageSettingsResource(draft_min_lines=min_lines)
    return preflight(root, [r for r in rows if r.stage in selected],
                     settings={s: settings.for_stage(s) for s in selected},
                     llm_config=LLMResource(offline=offline).llm_config())


def plan_cost(root: str, cohort_plan: CohortPlan) -> list[ModelEstimate]:
    """Priced model calls of a plan, per stage and model (see :mod:`.cohorts.estimate`)."""
    from .catalogs import load_models
    from .cohorts.estimate import price_calls

    calls: dict[tuple[Stage, str], tuple[int, int]] = {}
    for stage, stage_plan in cohort_plan.stages.items():
        to_call = stage_plan.calls_by_model()
        for g in stage_plan.generations:
            if g.llm_model_id:
                total, _ = calls.get((stage, g.llm_model_id), (0, 0))
                calls[(stage, g.llm_model_id)] = (total + 1, to_call.get(g.llm_model_id, 0))
    return price_calls(load_models(root), calls)


def estimate(root: str, cohort_id: str, *, prompt_tokens: int | None = None,
             completion_tokens: int | None = None) -> CohortEstimate:
    """Model calls per stage and their estimated cost, before anything runs (nothing written)."""
    from .cohorts.estimate import estimate_cohort

    return estimate_cohort(root, cohort_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def status(root: str, cohort_id: str) -> dict[Stage, StageStatus]:
    """Per-stage, per-phase state of every member of a built cohort (no model calls)."""
    from .cohorts import read_membership
    from .stages.status import cohort_status

    return cohort_status(GensDataLayer.from_root(root), read_membership(root, cohort_id))


def spending_status(root: str, cohort_id: str) -> list[str]:
    """Lines on a built cohort's gate and adaptive rounds (decisions, rounds done, the stopping
    rule's value, calls saved against the full design) and its tournament (rounds complete,
    what the next round waits for); empty without them. No model calls."""
    from .adaptive import (
        cohort_selection,
        has_spending,
        read_rounds,
        spec_file_or_none,
        spending_lines,
    )
    from .cohorts import load_membership
    from .cohorts.spec import load_spec

    spec_path = spec_file_or_none(root, cohort_id)
    if spec_path is None:
        return []  # a cohort built from a spec since removed: nothing to replay
    spec = load_spec(spec_path)
    membership = load_membership(root, cohort_id)
    lines = []
    if spec.tournament is not None:
        from .cohorts.tournament import decide_tournament

        lines.append(decide_tournament(root, spec.tournament, membership, gate=spec.essay_gate,
                                       adaptive=spec.adaptive, seed=spec.seed or 0).describe())
    if not has_spending(spec):
        return lines
    selection = cohort_selection(root, cohort_id, membership=membership, spec=spec)
    record = read_rounds(root, cohort_id) or {}
    ended_by = (record.get("adaptive") or {}).get("ended")
    return [*spending_lines(spec, selection, membership, ended_by=ended_by), *lines]


# -- running -------------------------------------------------------------------------------------
@dataclass
class StageOutcome:
    """What the Dagster runs of one stage did."""

    stage: Stage
    run_ids: list[str] = field(default_factory=list)
    success: bool = True


@dataclass
class RunOutcome:
    """What :func:`run` did."""

    cohort_id: str
    plan: CohortPlan
    stages: dict[Stage, StageOutcome] = field(default_factory=dict)
    report_state: ReportState = "skipped"
    report_path: str | None = None
    stopped: bool = False
    elapsed_s: float = 0.0
    selection: Selection | None = None
    """The spec's gate and adaptive rounds as the run left them (``None`` without them)."""
    round_plans: list[CohortPlan] = field(default_factory=list)
    """Plans of the rounds after the first (each added what the latest decision allowed)."""
    rounds_path: str | None = None
    ended_by: str | None = None
    """How adaptive evaluation ended (``goal met``, ``design exhausted``, ``budget``, ``stopped``)."""
    tournament: TournamentState | None = None
    """The tournament as the run left it (``None`` without a ``tournament`` section)."""

    @property
    def run_ids(self) -> list[str]:
        """Every Dagster run launched (none when the plan had no work)."""
        return [run_id for outcome in self.stages.values() for run_id in outcome.run_ids]

    @property
    def failed(self) -> bool:
        """True when a run failed or a planned generation is blocked."""
        return bool(self.plan.blocked) or not all(o.success for o in self.stages.values())


def run(
    root: str,
    cohort_id: str,
    *,
    stages: Sequence[Stage] | None = None,
    force: Sequence[Stage] = (),
    concurrency: int | None = None,
    max_cost: float | None = None,
    min_lines: int = 3,
    chunks: int | None = None,
    report: bool = True,
    offline: bool = False,
    progress: ProgressListener | None = None,
    on_plan: Callable[[CohortPlan], None] | None = None,
    on_round: Callable[[CohortPlan], None] | None = None,
) -> RunOutcome:
    """Build the cohort, plan it, launch Dagster runs only for the work, then rebuild the
    results when their inputs changed.

    A stage with nothing to do launches no run; results (tables, report) are materialised only
    when the content fingerprint of the cohort's scores and membership differs from the one
    stored beside the report (``report_state`` is then ``"built"``, else ``"current"``).
    ``progress`` receives every generation status of the runs; ``on_plan`` the plan before
    anything runs. Before the first run, pre-flight checks the generations with work (templates
    render, parsers exist, models have a route) and raises
    :class:`~daydreaming_dagster.preflight.PreflightError` listing every problem. ``offline``
    lets models without a key get synthetic text (recorded as such, never reused once the key
    is set). Call :func:`request_stop` (another thread, a signal handler) to stop launching new
    model calls.

    A cohort whose spec gates essays or adapts evaluation (docs/adaptive.md) runs round by
    round: the plan covers what the current decisions allow; after it, the gate and the adaptive
    rule decide again from the outcomes on disk and each later round's plan (passed to
    ``on_round``) runs the generations it adds, until nothing is added, ``max_cost`` is spent or
    a stop is requested. ``outcome.selection`` and ``cohorts/<id>/rounds.json`` say what was
    decided and how it ended.
    """
    started = time.perf_counter()
    selected = _selected(stages)
    cohort = build(root, cohort_id)
    spending = _spending_spec(cohort)
    selection = _selection(root, cohort_id, cohort.membership, spending)
    cohort_plan = plan(root, cohort_id, stages=selected, force=force,
                       membership=selection.restrict(cohort.membership) if selection else cohort.membership,
                       offline=offline)
    notes = _round_notes(cohort, spending, selection)
    if notes:
        cohort_plan = replace(cohort_plan, notes=notes)
    if on_plan is not None:
        on_plan(cohort_plan)
    outcome = RunOutcome(cohort_id=cohort_id, plan=cohort_plan, selection=selection, tournament=cohort.tournament)
    if selection is not None:
        _record_rounds(root, cohort_id, cohort.membership, outcome, stopped_by=None)
    instance = _LazyInstance()  # opened (and Dagster imported) only if something runs
    # One scope per invocation: overlapping chunk runs and every round share the call cap, rates
    # and budget.
    scope = f"daydream-run-{uuid.uuid4().hex[:12]}"
    try:
        if cohort_plan.has_work:
            if report:
                # New scores will need analysing: a second process imports the analysis while
                # the stages run here, and analyses once they are done (analysis/_prefetch.py).
                from .reporting import warm_report_prefetch

                warm_report_prefetch(root, cohort_id, **_analysis_settings())

            def run_plan(p: CohortPlan, f: Sequence[Stage], membership: Membership) -> dict[Stage, StageOutcome]:
                return _run_plan(root, cohort_id, membership, p, force=f, concurrency=concurrency,
                                 max_cost=max_cost, min_lines=min_lines, chunks=chunks, offline=offline,
                                 progress=progress, instance=instance, scope=scope)

            outcome.stages = run_plan(cohort_plan, force, cohort.membership)
            if selection is not None or cohort.tournament is not None:
                _run_rounds(root, cohort_id, cohort.membership, spending, outcome, run_plan,
                            budget_spent=lambda: _budget_spent(scope, max_cost, concurrency),
                            plan_round=lambda m: plan(root, cohort_id, stages=selected, force=(), membership=m,
                                                      offline=offline),
                            rebuild=(lambda: build(root, cohort_id)) if cohort.tournament is not None else None,
                            on_round=on_round)
        outcome.stopped = stop_requested()
        if report and not outcome.stopped:
            outcome.report_state, outcome.report_path = refresh_results(root, cohort_id, instance=instance)
    finally:
        from .llm.scope import close_call_scope

        close_call_scope(scope)
        instance.close()
        if report and cohort_plan.has_work:
            from .analysis import discard_prefetch

            discard_prefetch(root, cohort_id, **_analysis_settings())
    outcome.elapsed_s = time.perf_counter() - started
    return outcome


def _spending_spec(cohort: CohortBuild) -> CohortSpec | None:
    """The cohort's spec when it gates a stage or adapts evaluation (else ``None``)."""
    from .cohorts.spec import load_spec

    spec = load_spec(cohort.spec_path)
    return spec if _has_spending(spec) else None


def _selection(root: str, cohort_id: str, membership: Membership, spec: CohortSpec | None) -> Selection | None:
    if spec is None:
        return None
    from .adaptive import cohort_selection

    return cohort_selection(root, cohort_id, membership=membership, spec=spec)


def _budget_spent(scope: str, max_cost: float | None, concurrency: int | None) -> bool:
    if max_cost is None:
        return False
    from .resources import LLMResource

    ledger = LLMResource(concurrency=concurrency, max_cost=max_cost, scope=scope).call_scope()
    return ledger is not None and ledger.ledger.exhausted()


def _record_rounds(root: str, cohort_id: str, membership: Membership, outcome: RunOutcome, *,
                   stopped_by: str | None) -> None:
    from .adaptive import write_rounds

    if outcome.selection is not None:
        outcome.rounds_path = write_rounds(root, cohort_id, outcome.selection, membership, stopped_by=stopped_by)
        outcome.ended_by = (outcome.selection.adaptive.ended if outcome.selection.adaptive else None) or stopped_by


def _round_notes(cohort: CohortBuild | CompiledCohort, spending: CohortSpec | None,
                 selection: Selection | None) -> tuple[str, ...]:
    """Plan notes: the gate and adaptive decisions, and the tournament's state and total calls."""
    notes: list[str] = []
    if selection is not None and spending is not None:
        from .adaptive import spending_lines

        notes += spending_lines(spending, selection, cohort.membership)
    if cohort.tournament is not None:
        state = cohort.tournament
        essays = len(cohort.membership.essays)
        notes.append(state.describe())
        notes.append(f"the tournament makes {state.spec.total_calls(essays)} judge calls in all "
                     f"({state.spec.rounds} rounds x {state.spec.pool_size(essays) // 2} pairs x "
                     f"{state.spec.calls_per_pair()} calls per pair); this plan covers the decided rounds")
    return tuple(notes)


def _run_rounds(root: str, cohort_id: str, membership: Membership, spec: CohortSpec | None, outcome: RunOutcome,
                run_plan: Callable[[CohortPlan, Sequence[Stage], Membership], dict[Stage, StageOutcome]], *,
                budget_spent: Callable[[], bool], plan_round: Callable[[Membership], CohortPlan],
                rebuild: Callable[[], CohortBuild] | None = None,
                on_round: Callable[[CohortPlan], None] | None = None) -> None:
    """After the first run: decide again from the outcomes on disk (the gate, the next adaptive
    round, the next tournament round: ``rebuild`` re-builds the cohort, whose membership grows by
    the rounds the verdicts now decide), run what the decisions add, until nothing is added, the
    budget is spent or a stop is requested. Each gate or adaptive decision is recorded in
    ``rounds.json`` before its run starts; each round is one set of range runs over the
    generations it adds."""
    while True:
        stopped_by = "stopped" if stop_requested() else "budget" if budget_spent() else None
        if rebuild is not None and stopped_by is None:
            cohort = rebuild()
            membership, outcome.tournament = cohort.membership, cohort.tournament
        outcome.selection = _selection(root, cohort_id, membership, spec)
        if outcome.selection is not None:
            _record_rounds(root, cohort_id, membership, outcome, stopped_by=stopped_by)
        if stopped_by is not None:
            return
        allowed = outcome.selection.restrict(membership) if outcome.selection is not None else membership
        round_plan = plan_round(allowed)
        if not round_plan.has_work:
            return
        outcome.round_plans.append(round_plan)
        if on_round is not None:
            on_round(round_plan)
        # Later rounds force nothing: a forced stage was regenerated by the first run.
        for stage, ran in run_plan(round_plan, (), membership).items():
            merged = outcome.stages.setdefault(stage, StageOutcome(stage))
            merged.run_ids += ran.run_ids
            merged.success = merged.success and ran.success


def _analysis_settings() -> dict[str, int]:
    """The analysis settings of the results run (the defaults of its ``AnalysisConfig``)."""
    from .analysis import DEFAULT_BOOTSTRAP, DEFAULT_SEED

    return {"seed": DEFAULT_SEED, "n_boot": DEFAULT_BOOTSTRAP}


class _LazyInstance:
    """The in-process Dagster instance of one :func:`run`, opened on first use and shared by its
    stage runs and its results run (opening one costs a noticeable part of a small run)."""

    def __init__(self) -> None:
        self._instance: Any = None

    def get(self) -> Any:
        if self._instance is None:
            from .orchestration import in_process_instance

            self._instance = in_process_instance()
        return self._instance

    def close(self) -> None:
        """Dispose of the instance if it was opened (its storage keeps database files open)."""
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None


def _run_plan(root: str, cohort_id: str, membership: Membership, cohort_plan: CohortPlan, *,
              force: Sequence[Stage], concurrency: int | None, max_cost: float | None, min_lines: int,
              chunks: int | None, offline: bool, progress: ProgressListener | None,
              instance: _LazyInstance, scope: str) -> dict[Stage, StageOutcome]:
    """Pre-flight the plan's work, then launch its Dagster runs (in this process, one run per
    stage range)."""
    if _calls_remote_models(root, cohort_plan):
        # The HTTP client (openai SDK) takes about a second to import: load it while the
        # partitions register rather than inside the first raw step.
        threading.Thread(target=_warm_up_http_client, name="daydream-warm-up", daemon=True).start()
    from .assets.generation import GENERATION_ASSETS
    from .definitions import build_resources
    from .orchestration import plan_chunks, register_keys, run_cohort
    from .preflight import PREFLIGHT_PASSED, PREFLIGHT_TAG, preflight
    from .resources import LLMResource, StageSettingsResource
    from .stages.batch import add_progress_listener, remove_progress_listener

    llm = LLMResource(concurrency=concurrency, max_cost=max_cost, scope=scope, offline=offline)
    settings = StageSettingsResource(**{f"force_{s}": s in force for s in STAGES}, draft_min_lines=min_lines)
    work = cohort_plan.work()
    todo = [row for row in membership.all_rows() if row.gen_id in set(work.get(row.stage, ()))]
    checked = preflight(root, todo, settings={s: settings.for_stage(s) for s in cohort_plan.stages},
                        llm_config=llm.llm_config(), check_routes=llm.checks_routes())
    checked.raise_for_problems(f"cohort {cohort_id}")

    # A range run passes over the planned generations between its first and last with work
    # (reusing them); members the plan left out (gated, or waiting for an adaptive round) must
    # never fall inside a range, so only planned members may be passed over. They are also the
    # only ones registered: partitions keep registration order, so what a later round adds is
    # appended after everything before it and runs as one contiguous range.
    planned = {g.gen_id for stage_plan in cohort_plan.stages.values() for g in stage_plan.generations}
    runnable = {s: [g for g in membership.gen_ids(s) if g in planned] for s in STAGES}
    dagster_instance = instance.get()
    for stage in STAGES:
        register_keys(dagster_instance, stage, runnable[stage])
    resources = build_resources(root, stage_settings=settings, llm=llm)
    # Default: one run per stage, overlapping with no stage barrier (a generation starts when its
    # parent is parsed); an explicit --chunks splits the cohort into chunks (1: stage by stage).
    chunk_plan = plan_chunks(runnable, membership.parents(), chunks or 1)
    phases: dict[Stage, Sequence[Phase]] = {}
    for stage, stage_plan in cohort_plan.stages.items():
        first = stage_plan.first_phase
        phases[stage] = PHASES[PHASES.index(first):] if first else ()
    stages_with_work = [s for s in cohort_plan.stages if work.get(s)]
    if progress is not None:
        add_progress_listener(progress)
    try:
        results = run_cohort(dagster_instance, GENERATION_ASSETS, chunk_plan, stages_with_work, resources,
                             tags={"daydream/cohort": cohort_id, PREFLIGHT_TAG: PREFLIGHT_PASSED},
                             work=work, phases=phases, pipeline=scope if chunks is None else None)
    finally:
        if progress is not None:
            remove_progress_listener(progress)
    return {stage: StageOutcome(stage, r.run_ids, r.success) for stage, r in results.items()}


def _calls_remote_models(root: str, cohort_plan: CohortPlan) -> bool:
    from .catalogs import load_models

    models = load_models(root)
    used = {m for p in cohort_plan.stages.values() for m in p.calls_by_model()}
    return any(models[m].provider != "offline" for m in used if m in models)


def _warm_up_http_client() -> None:
    from .llm.openai_compatible import warm_up

    warm_up()


def refresh_results(root: str, cohort_id: str, *, force: bool = False,
                    instance: _LazyInstance | None = None) -> tuple[ReportState, str | None]:
    """Materialise the cohort's results assets (tables, report) when their inputs changed.

    Returns ``("current", path)`` without running anything when the fingerprint of the
    cohort's scores and membership matches the one stored beside the report, else
    ``("built", path)`` after one Dagster run (the fingerprint is stored only on success).
    """
    from .data_layer import Paths

    paths = Paths.from_str(root)
    report_md = paths.cohort_dir(cohort_id) / "reports" / "report.md"
    fingerprint = results_fingerprint(root, cohort_id)
    if not force and report_md.is_file() and read_results_fingerprint(root, cohort_id) == fingerprint:
        return "current", str(report_md)
    from .analysis import discard_prefetch
    from .reporting import start_report_prefetch

    # The scores are final: the analysis (the slowest results step) starts now in a second
    # process, beside the Dagster run that will ask for it (analysis/_prefetch.py).
    start_report_prefetch(root, cohort_id, **_analysis_settings())
    own = instance is None  # else the caller's, closed by the caller
    opened = instance or _LazyInstance()
    try:
        path = _materialize_results(root, cohort_id, opened.get())
    finally:
        discard_prefetch(root, cohort_id, **_analysis_settings())
        if own:
            opened.close()
    write_results_fingerprint(root, cohort_id, fingerprint)
    return "built", path


class ResultsFailed(RuntimeError):
    """Materialising the results assets failed; the message lists the failed steps."""


def _materialize_results(root: str, cohort_id: str, instance: Any) -> str:
    """Materialise the cohort and results assets for a cohort in one Dagster run (tables land
    in the environment's store: DuckDB by default) and return the report path."""
    from dagster import materialize

    from .assets.cohort import COHORT_ASSETS, sync_cohort_partitions
    from .assets.results import RESULTS_ASSETS
    from .definitions import build_resources
    from .orchestration import quiet_run_config

    sync_cohort_partitions(instance, root)
    result = materialize(
        [*COHORT_ASSETS, *RESULTS_ASSETS], partition_key=cohort_id, instance=instance,
        resources=build_resources(root), raise_on_error=False, run_config=quiet_run_config(),
        tags={"daydream/cohort": cohort_id},
    )
    if not result.success:
        failures = [f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[-1]}"
                    for e in result.get_step_failure_events() if e.step_failure_data and e.step_failure_data.error]
        raise ResultsFailed("building the results failed: " + "; ".join(failures))
    return str(result.asset_materializations_for_node("cohort_report")[0].metadata["report"].value)


def reparse(root: str, cohort_id: str, stage: Stage, parser_name: str | None = None) -> tuple[BatchReport, int]:
    """Re-run the parsers over the existing raw outputs of a stage (no model calls).

    Returns the batch report and how many members had no usable raw output.
    """
    from .cohorts import read_membership
    from .stages.batch import run_parsed_batch
    from .stages.context import StageContext
    from .stages.settings import StageSettings

    gen_ids = read_membership(root, cohort_id)[stage]
    ctx = StageContext.for_root(root)
    with_raw = [g for g in gen_ids if ctx.layer.raw_exists(stage, g)]
    batch = run_parsed_batch(ctx, stage, with_raw, StageSettings(force=True), run_id="reparse",
                             parser_name=parser_name)
    return batch, len(gen_ids) - len(with_raw)


# -- retrying and launching --------------------------------------------------------------------
RETRY_TAG = "daydream/retry_failed"


def retry_targets(root: str, cohort_id: str, stages: Sequence[Stage] | None = None) -> dict[Stage, list[str]]:
    """Failed generations of a cohort per stage, plus the descendants waiting on them."""
    from .cohorts import read_membership
    from .failures import retry_targets as targets

    return targets(GensDataLayer.from_root(root), read_membership(root, cohort_id), _selected(stages))


@dataclass(frozen=True)
class RetryOutcome:
    """One stage of :func:`retry_failed`."""

    stage: Stage
    retried: list[str]
    still_failing: list[FailedGeneration]
    run_ids: list[str]


def retry_failed(root: str, cohort_id: str, targets: Mapping[Stage, Sequence[str]], *,
                 concurrency: int | None = None, min_lines: int = 3, offline: bool = False) -> list[RetryOutcome]:
    """Re-run ``targets`` (from :func:`retry_targets`) through the same range runs as :func:`run`,
    in this process on the same instance set-up (``offline`` as for :func:`run`)."""
    from .assets.generation import build_generation_assets
    from .definitions import build_resources
    from .failures import COHORT_TAG, failed_generations
    from .orchestration import in_process_instance, register_keys, run_stage
    from .resources import LLMResource, StageSettingsResource

    layer = GensDataLayer.from_root(root)
    instance = in_process_instance()
    # Built now, not at import: the step-retry settings come from the environment of this call.
    assets = build_generation_assets()
    settings = StageSettingsResource(draft_min_lines=min_lines)
    resources = build_resources(root, stage_settings=settings, llm=LLMResource(concurrency=concurrency, offline=offline))
    outcomes = []
    try:
        for stage in STAGES:
            ids = list(targets.get(stage, ()))
            if not ids:
                continue
            register_keys(instance, stage, ids)
            ran = run_stage(instance, assets, stage, ids, resources, tags={COHORT_TAG: cohort_id, RETRY_TAG: "1"})
            outcomes.append(RetryOutcome(stage, ids, failed_generations(layer, stage, ids), ran.run_ids))
    finally:
        instance.dispose()  # its storage keeps database files open
    return outcomes


@dataclass(frozen=True)
class LaunchedRun:
    """One range run of :func:`launch`."""

    stage: Stage
    first: str
    last: str
    run_id: str | None
    success: bool
    error: str = ""
    round: int = 1
    """The round of a gated or adaptive cohort (each round launches only what it adds)."""


def launch(root: str, cohort_id: str, *, stages: Sequence[Stage] | None = None, split: int | None = None,
           chunk: int | None = None, parallel: int = 2, build_first: bool = True,
           offline: bool = False) -> Iterator[LaunchedRun]:
    """Run a cohort's stages as parallel range runs on the executor the definitions use
    (``DAYDREAMING_EXECUTOR``), each in its own run-coordinator process; yields each run as
    its stage finishes. Pre-flight first: a problem raises before anything runs. ``offline``
    lets models without a key get synthetic text (inherited by the run processes).

    A cohort whose spec gates essays, adapts evaluation or plays a tournament goes round by
    round, as :func:`run` does: each round launches only the members its decisions add
    (``round`` on each run), and the next round is decided once its runs have finished."""
    import math
    import os

    from .adaptive import write_rounds
    from .cohorts import load_membership, read_membership
    from .failures import COHORT_TAG, PROVIDER_TAG, ROUND_TAG
    from .llm.routes import OFFLINE_ENV
    from .orchestration import get_instance, register_keys
    from .partitions import partitions_name
    from .preflight import PREFLIGHT_PASSED, PREFLIGHT_TAG, cohort_preflight, preflight
    from .range_runs import (
        ensure_pool_limit,
        launch_stage_ranges,
        stage_providers,
        stage_run_ranges,
    )

    selected = _selected(stages)
    if offline:
        os.environ[OFFLINE_ENV] = "1"  # the run processes inherit the opt-in
    if build_first:
        rows = build(root, cohort_id).membership.all_rows()
        checked = preflight(root, [r for r in rows if r.stage in selected])
        members = read_membership(root, cohort_id)
    else:  # the seeded metadata says what each generation needs
        members = read_membership(root, cohort_id)
        checked = cohort_preflight(root, {s: members[s] for s in selected})
    checked.raise_for_problems(f"cohort {cohort_id}")
    instance = get_instance()
    for stage in STAGES:
        register_keys(instance, stage, members[stage])
    ensure_pool_limit(instance)
    # The run processes must find the same data root and instance.
    env = {**os.environ, "DAYDREAMING_DATA_ROOT": root, "DAGSTER_HOME": os.environ["DAGSTER_HOME"]}
    spec = _spending_spec_of(root, cohort_id)
    membership = load_membership(root, cohort_id) if spec is not None else None
    tournament = _has_tournament(root, cohort_id)
    launched: dict[Stage, set[str]] = {stage: set() for stage in STAGES}
    number = 0
    while True:
        number += 1
        if tournament and number > 1:
            # The verdicts of the round that just finished decide the next tournament round.
            build(root, cohort_id)
            members = read_membership(root, cohort_id)
            register_keys(instance, "comparison", members["comparison"])
            if membership is not None:
                membership = load_membership(root, cohort_id)
        selection = _selection(root, cohort_id, membership, spec) if membership is not None else None
        if selection is not None and membership is not None:
            write_rounds(root, cohort_id, selection, membership)
        any_new = False
        for stage in selected:
            allowed = [g for g in members[stage] if selection is None or selection.allows(g)]
            new = [g for g in allowed if g not in launched[stage]]
            if not new:
                continue
            any_new = True
            launched[stage].update(new)
            stage_keys = instance.get_dynamic_partitions(partitions_name(stage))
            if selection is None:
                size = chunk or (math.ceil(len(new) / split) if split else 0)
                ranges = stage_run_ranges(stage_keys, new, size)
            else:
                # One range from the round's first to its last new key: the steps skip members
                # the selection holds back and reuse finished ones (assets/generation.py).
                ranges = _spanning_range(stage_keys, new, chunk or (math.ceil(len(new) / split) if split else 0))
            tags = {COHORT_TAG: cohort_id, PROVIDER_TAG: stage_providers(root, stage, new),
                    PREFLIGHT_TAG: PREFLIGHT_PASSED, ROUND_TAG: str(number)}
            for ran in launch_stage_ranges(stage, ranges, tags, parallel=parallel, env=env):
                yield LaunchedRun(stage, ran.first, ran.last, ran.run_id, ran.success, ran.error, number)
        if (selection is None and not tournament) or not any_new or stop_requested():
            return


def _spending_spec_of(root: str, cohort_id: str) -> CohortSpec | None:
    from .adaptive import has_spending, spec_file_or_none
    from .cohorts.spec import load_spec

    path = spec_file_or_none(root, cohort_id)
    spec = load_spec(path) if path is not None else None
    return spec if spec is not None and has_spending(spec) else None


def _has_tournament(root: str, cohort_id: str) -> bool:
    from .adaptive import spec_file_or_none
    from .cohorts.spec import load_spec

    path = spec_file_or_none(root, cohort_id)
    return path is not None and load_spec(path).tournament is not None


def _spanning_range(stage_keys: Sequence[str], gen_ids: Sequence[str], chunk: int) -> list[list[str]]:
    """The partition keys from the first to the last of ``gen_ids`` (in partition order), cut
    into chunks of ``chunk`` keys (0: one range)."""
    from .automation import split_segment

    position = {key: index for index, key in enumerate(stage_keys)}
    indices = sorted(position[g] for g in gen_ids if g in position)
    if not indices:
        return []
    return split_segment(stage_keys[indices[0]:indices[-1] + 1], chunk)


def prune_partitions(root: str, *, dry_run: bool = False) -> dict[str, list[str]]:
    """Drop dynamic partition keys no cohort lists any more (``dry_run``: only list them)."""
    from .assets.cohort import prune_dynamic_partitions
    from .orchestration import get_instance

    with get_instance() as instance:
        return prune_dynamic_partitions(instance, root, dry_run=dry_run)


def prepare_instance() -> str:
    """Create ``DAGSTER_HOME`` (default ``./.dagster_home``) with its ``dagster.yaml``; return it."""
    from .orchestration import get_instance_home

    return str(get_instance_home())


# -- results -------------------------------------------------------------------------------------
def report(root: str, cohort_id: str, *, top_n: int = 5) -> CohortReport:
    """Build a cohort's report (Markdown + HTML, CSV tables, score plot, top essays) from disk."""
    from .reporting import write_cohort_report

    return write_cohort_report(root, cohort_id, top_n=top_n)


def scores(root: str, cohort_id: str) -> pl.DataFrame:
    """One row per evaluation of the cohort: essay, draft, combo, templates, models,
    evaluator, score, scale and parse status (a polars DataFrame)."""
    from .results import evaluation_scores

    return evaluation_scores(root, cohort_id)


def scores_pandas(root: str, cohort_id: str) -> pd.DataFrame:
    """:func:`scores` as a pandas DataFrame."""
    return scores(root, cohort_id).to_pandas()


def load_membership_frame(root: str, cohort_id: str) -> pl.DataFrame:
    """A built cohort's membership rows (stage, gen_id, parent, template, model...) as a frame."""
    from .cohorts import load_membership

    return load_membership(root, cohort_id).to_frame()

