"""``daydream run COHORT`` and ``daydream reparse COHORT``: the common path, no Dagster
selection strings to remember."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import click

from ..types import STAGES, Phase, Stage
from ._common import data_root_option, graceful_interrupt, resolve_data_root, run_in_worker_thread
from .view import echo_explorer_hint

STAGE_CHOICE = click.Choice(list(STAGES))


@dataclass
class StageTally:
    """Live counts for one stage's progress line."""

    total: int = 0
    done: int = 0
    reused: int = 0
    failed: set[str] = field(default_factory=set)
    cost_usd: float = 0.0
    calls: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.reused + len(self.failed)

    def describe(self) -> str:
        return f"done {self.done} · reused {self.reused} · failed {len(self.failed)} · ${self.cost_usd:.4f}"


class ProgressBoard:
    """Turns per-generation statuses from the stage batches into progress bars."""

    def __init__(self, totals: dict[Stage, int], enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.tallies: dict[Stage, StageTally] = defaultdict(StageTally)
        self._lock = threading.Lock()  # chunks of a cohort report from several threads
        self.progress = Progress(
            TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
            disable=not enabled, transient=False,
        )
        self.tasks = {}
        for stage, total in totals.items():
            self.tallies[stage].total = total
            self.tasks[stage] = self.progress.add_task(stage, total=total, detail="", visible=total > 0)

    def listener(self, stage: Stage, phase: Phase, status) -> None:  # noqa: ANN001 - GenerationStatus
        with self._lock:
            self._count(stage, phase, status)

    def _count(self, stage: Stage, phase: Phase, status) -> None:  # noqa: ANN001 - GenerationStatus
        tally = self.tallies[stage]
        if phase == "raw":  # rejected outputs were paid for too
            tally.cost_usd += status.cost_usd
            tally.calls += int(status.called_model)
        if status.status == "failed":
            tally.failed.add(status.gen_id)
        elif phase == "parsed" and status.gen_id not in tally.failed:
            if status.status == "done":
                tally.done += 1
            elif status.status == "reused":
                tally.reused += 1
        if stage in self.tasks:
            self.progress.update(self.tasks[stage], completed=tally.finished, detail=tally.describe())


@click.command("run")
@click.argument("cohort_id")
@click.option("--stage", "stages", type=STAGE_CHOICE, multiple=True,
              help="Run only these stages (repeatable; default: all, in order).")
@click.option("--force", "force", type=STAGE_CHOICE, multiple=True,
              help="Regenerate this stage even where outputs exist (repeatable).")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=None,
              help="Model calls in flight at once (default: $DAYDREAMING_LLM_CONCURRENCY or 16).")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None,
              help="USD budget for this invocation: no new call starts once it is spent.")
@click.option("--min-lines", type=click.IntRange(0), default=3, show_default=True,
              help="Minimum non-empty lines of a draft's raw output.")
@click.option("--chunks", type=click.IntRange(1, 64), default=None,
              help="Split the cohort into this many chunks whose stages overlap while model calls are "
                   "slow (default: one per --concurrency drafts, at most 8; 1 = stage by stage).")
@click.option("--no-report", is_flag=True, help="Skip building the report at the end.")
@click.option("--check", is_flag=True,
              help="Only pre-flight: build the cohort, print each model's route and every problem "
                   "(or 'ok'); call nothing. Exit 2 on problems.")
@click.option("--offline", is_flag=True,
              help="Serve models without a key by the offline provider (SYNTHETIC text, recorded as such "
                   "and never reused once the key is set); also $DAYDREAMING_OFFLINE=1.")
@data_root_option
def run(cohort_id: str, stages: tuple[str, ...], force: tuple[str, ...], concurrency: int | None,
        max_cost: float | None, min_lines: int, chunks: int | None, no_report: bool, check: bool,
        offline: bool, data_root: str | None) -> None:
    """Compile COHORT, register its partitions and run its stages through Dagster.

    Pre-flight first: every template renders, every parser exists, every model has a route; on
    any problem nothing is called (exit 2). Reuses every finished artefact (a re-run pays
    nothing twice); exits 1 when some generations failed (see `daydream status COHORT`).
    """
    from ..assets.generation import GENERATION_ASSETS
    from ..cohorts import build_cohort
    from ..definitions import build_resources
    from ..llm.scope import close_call_scope
    from ..orchestration import (
        default_chunk_count,
        in_process_instance,
        plan_chunks,
        register_keys,
        run_cohort,
    )
    from ..preflight import PREFLIGHT_PASSED, PREFLIGHT_TAG, preflight
    from ..resources import LLMResource, StageSettingsResource
    from ..stages.batch import add_progress_listener, remove_progress_listener, stop_requested

    root = resolve_data_root(data_root)
    started = time.perf_counter()
    membership = build_cohort(root, cohort_id).membership
    selected: list[Stage] = [s for s in STAGES if not stages or s in stages]
    # One scope per invocation: overlapping chunk runs share the call cap, rates and budget.
    scope = f"daydream-run-{uuid.uuid4().hex[:12]}"
    llm = LLMResource(concurrency=concurrency, max_cost=max_cost, scope=scope, offline=offline)
    settings = StageSettingsResource(**{f"force_{s}": s in force for s in STAGES}, draft_min_lines=min_lines)
    checked = preflight(root, [r for r in membership.all_rows() if r.stage in selected],
                        settings={s: settings.for_stage(s) for s in selected}, llm_config=llm.llm_config())
    if check:
        _print_check(cohort_id, checked)
        return
    checked.raise_for_problems(f"cohort {cohort_id}")
    if _calls_remote_models(root, membership):
        # The HTTP client (openai SDK) takes about a second to import: load it while the
        # partitions register rather than inside the first raw step.
        threading.Thread(target=_warm_up_http_client, name="daydream-warm-up", daemon=True).start()
    members: dict[Stage, list[str]] = {s: membership.gen_ids(s) for s in STAGES}
    parents = membership.parents()
    click.echo(f"cohort {cohort_id}: " + ", ".join(f"{len(members[s])} {s}s" for s in STAGES), err=True)

    instance = in_process_instance()
    for stage in STAGES:
        register_keys(instance, stage, members[stage])

    resources = build_resources(root, stage_settings=settings, llm=llm)
    chunk_count = chunks or default_chunk_count(len(members["draft"]), llm.effective_concurrency())
    plan = plan_chunks(members, parents, chunk_count)

    board = ProgressBoard({s: len(members[s]) for s in selected}, enabled=sys.stderr.isatty())
    add_progress_listener(board.listener)
    outcomes: list[bool] = []

    def run_stages() -> None:
        results = run_cohort(instance, GENERATION_ASSETS, plan, selected, resources,
                             tags={"daydream/cohort": cohort_id, PREFLIGHT_TAG: PREFLIGHT_PASSED})
        outcomes.extend(outcome.success for outcome in results.values())

    try:
        with graceful_interrupt("stopping: no new model calls; calls in flight will finish and persist "
                                "(Ctrl-C again to abort now)"), board.progress:
            run_in_worker_thread(run_stages)
    finally:
        remove_progress_listener(board.listener)
        close_call_scope(scope)
    any_failed = not all(outcomes)

    for stage in selected:
        tally = board.tallies[stage]
        click.echo(f"{stage:<11} {tally.finished}/{tally.total}  {tally.describe()}  calls {tally.calls}", err=True)
    if stop_requested():
        click.echo("stopped early: re-run the same command to resume (finished work is reused)", err=True)
    if not no_report and not stop_requested():
        report_path = _materialize_results(instance, root, cohort_id)
        click.echo(f"report: {report_path}")
    echo_explorer_hint(cohort_id)
    click.echo(f"finished in {time.perf_counter() - started:.1f}s", err=True)
    if stop_requested():
        sys.exit(130)  # interrupted: the conventional exit code for SIGINT
    if any_failed:
        click.echo(f"some generations failed; see `daydream status {cohort_id}`", err=True)
        sys.exit(1)


def _print_check(cohort_id: str, report) -> None:  # noqa: ANN001 - PreflightReport
    """``run --check``: the route of each model, then every problem (exit 2) or ``ok``."""
    click.echo(f"cohort {cohort_id}: {report.members} generations checked")
    for plan in report.routes:
        click.echo(f"route  {plan.describe()}")
    if report.problems:
        for problem in report.problems:
            click.echo(f"error: {problem.render()}", err=True)
        sys.exit(2)
    click.echo("ok")


def _calls_remote_models(root: str, membership) -> bool:  # noqa: ANN001 - Membership
    from ..catalogs import load_models

    models = load_models(root)
    used = {row.llm_model_id for row in membership.all_rows() if row.llm_model_id}
    return any(models[m].provider != "offline" for m in used if m in models)


def _warm_up_http_client() -> None:
    from ..llm.openai_compatible import warm_up

    warm_up()


@click.command("reparse")
@click.argument("cohort_id")
@click.option("--stage", "stage", type=STAGE_CHOICE, required=True, help="Stage whose raw outputs to re-parse.")
@click.option("--parser", "parser_name", default=None, help="Parser to use instead of each template's parser.")
@data_root_option
def reparse(cohort_id: str, stage: Stage, parser_name: str | None, data_root: str | None) -> None:
    """Re-run the parsers over existing raw outputs of COHORT's STAGE (no model calls)."""
    from ..cohorts import read_membership
    from ..stages.batch import run_parsed_batch
    from ..stages.context import StageContext
    from ..stages.settings import StageSettings

    root = resolve_data_root(data_root)
    gen_ids = read_membership(root, cohort_id)[stage]
    ctx = StageContext.for_root(root)
    with_raw = [g for g in gen_ids if ctx.layer.raw_exists(stage, g)]
    report = run_parsed_batch(ctx, stage, with_raw, StageSettings(force=True), run_id="reparse",
                              parser_name=parser_name)
    summary = report.summary()
    click.echo(f"{stage}: re-parsed {summary['done']} of {len(gen_ids)} "
               f"({len(gen_ids) - len(with_raw)} without usable raw output), {summary['failed']} failed")
    for failure in report.failures[:20]:
        click.echo(f"  {failure.gen_id}: {failure.error}", err=True)
    if report.failures:
        sys.exit(1)


def _materialize_results(instance, root: str, cohort_id: str) -> str:  # noqa: ANN001 - DagsterInstance
    """Materialise the cohort and results assets for COHORT in one Dagster run (tables land in
    the environment's store: DuckDB by default) and return the report path."""
    from dagster import materialize

    from ..assets.cohort import COHORT_ASSETS, sync_cohort_partitions
    from ..assets.results import RESULTS_ASSETS
    from ..definitions import build_resources
    from ..orchestration import quiet_run_config

    sync_cohort_partitions(instance, root)
    result = materialize(
        [*COHORT_ASSETS, *RESULTS_ASSETS], partition_key=cohort_id, instance=instance,
        resources=build_resources(root), raise_on_error=False, run_config=quiet_run_config(),
        tags={"daydream/cohort": cohort_id},
    )
    if not result.success:
        failures = [f"{e.step_key}: {e.step_failure_data.error.message.strip().splitlines()[-1]}"
                    for e in result.get_step_failure_events() if e.step_failure_data and e.step_failure_data.error]
        raise click.ClickException("building the results failed: " + "; ".join(failures))
    report = result.asset_materializations_for_node("cohort_report")[0].metadata["report"].value
    return str(report)
