"""``daydream run COHORT`` and ``daydream reparse COHORT``: the common path, no Dagster
selection strings to remember. Argument parsing and printing only; the work is in
:mod:`daydreaming_dagster.app`."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from .. import app
from ..types import STAGES, Phase, Stage
from ._common import data_root_option, graceful_interrupt, resolve_data_root, run_in_worker_thread
from .view import echo_explorer_hint

if TYPE_CHECKING:
    from ..cohorts.estimate import ModelEstimate
    from ..planning import CohortPlan

STAGE_CHOICE = click.Choice(list(STAGES))


@dataclass
class StageTally:
    """Live counts for one stage's progress line (sets: a range run may report a generation
    the plan already counted as reused)."""

    total: int = 0
    done: set[str] = field(default_factory=set)
    reused: set[str] = field(default_factory=set)
    claimed: set[str] = field(default_factory=set)
    """Produced by another run that held their claim (nothing called here)."""
    failed: set[str] = field(default_factory=set)
    cost_usd: float = 0.0
    calls: int = 0
    seen: set[str] = field(default_factory=set)
    """Generations counted in ``total`` (later rounds add theirs)."""

    @property
    def finished(self) -> int:
        return len(self.done | self.reused | self.claimed | self.failed)

    def describe(self) -> str:
        claimed = self.claimed - self.failed
        text = (f"done {len(self.done - claimed - self.failed)} · "
                f"reused {len(self.reused - self.done - claimed - self.failed)} · ")
        if claimed:
            text += f"claimed by another run {len(claimed)} · "
        return text + f"failed {len(self.failed)} · ${self.cost_usd:.4f}"


class ProgressBoard:
    """Turns per-generation statuses from the stage batches into progress bars."""

    def __init__(self, plan: CohortPlan, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.tallies: dict[Stage, StageTally] = {}
        self._lock = threading.Lock()  # chunks of a cohort report from several threads
        self.progress = Progress(
            TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
            disable=not enabled, transient=False,
        )
        self.tasks = {}
        for stage, stage_plan in plan.stages.items():
            tally = StageTally(total=len(stage_plan.generations), seen={g.gen_id for g in stage_plan.generations})
            tally.reused = {g.gen_id for g in stage_plan.generations if not g.has_work and not g.blocked}
            self.tallies[stage] = tally
            self.tasks[stage] = self.progress.add_task(stage, total=tally.total, completed=tally.finished,
                                                       detail=tally.describe(), visible=bool(stage_plan.work))

    def add_round(self, plan: CohortPlan) -> None:
        """A later round (a gate's decision, an adaptive round) adds its new generations."""
        with self._lock:
            for stage, stage_plan in plan.stages.items():
                tally = self.tallies.get(stage)
                if tally is None:
                    continue
                new = {g.gen_id for g in stage_plan.generations} - tally.seen
                tally.seen |= new
                tally.total += len(new)
                self.progress.update(self.tasks[stage], total=tally.total, visible=True)

    def listener(self, stage: Stage, phase: Phase, status) -> None:  # noqa: ANN001 - GenerationStatus
        with self._lock:
            self._count(stage, phase, status)

    def _count(self, stage: Stage, phase: Phase, status) -> None:  # noqa: ANN001 - GenerationStatus
        tally = self.tallies.get(stage)
        if tally is None:
            return
        if phase == "raw":  # rejected outputs were paid for too
            tally.cost_usd += status.cost_usd
            tally.calls += int(status.called_model)
        if status.status == "failed":
            tally.failed.add(status.gen_id)
        elif status.status == "claimed":
            tally.claimed.add(status.gen_id)
        elif phase == "parsed" and status.gen_id not in tally.failed:
            if status.status == "done":
                tally.done.add(status.gen_id)
            elif status.status == "reused":
                tally.reused.add(status.gen_id)
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
                   "slow; 1 = stage by stage (default: one run per stage, the runs overlapping while "
                   "calls are slow, each generation starting as soon as its parent is parsed).")
@click.option("--no-report", is_flag=True, help="Skip building the report at the end.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan (per stage: to render, to call, to parse, reused, blocked) and the "
                   "estimated cost of its calls; call and write nothing.")
@click.option("--check", is_flag=True,
              help="Only pre-flight: build the cohort, print each model's route and every problem "
                   "(or 'ok'); call nothing. Exit 2 on problems.")
@click.option("--offline", is_flag=True,
              help="Serve models without a key by the offline provider (SYNTHETIC text, recorded as such "
                   "and never reused once the key is set); also $DAYDREAMING_OFFLINE=1.")
@data_root_option
def run(cohort_id: str, stages: tuple[str, ...], force: tuple[str, ...], concurrency: int | None,
        max_cost: float | None, min_lines: int, chunks: int | None, no_report: bool, dry_run: bool,
        check: bool, offline: bool, data_root: str | None) -> None:
    """Compile COHORT, plan it, and run through Dagster only what the plan needs.

    Pre-flight first: every template of the work renders, every parser exists, every model has a
    route; on any problem nothing is called (exit 2). Reuses every finished artefact (a re-run
    pays nothing twice; with nothing to do it launches no Dagster run, and the results are
    rebuilt only when scores or membership changed); exits 1 when some generations failed or are
    blocked (see `daydream status COHORT`).
    """
    root = resolve_data_root(data_root)
    selected: list[Stage] = [s for s in STAGES if not stages or s in stages]
    forced: list[Stage] = [s for s in STAGES if s in force]
    if check:
        _print_check(cohort_id, app.check(root, cohort_id, stages=selected, offline=offline, min_lines=min_lines))
        return
    if dry_run:
        plan = app.plan(root, cohort_id, stages=selected, force=forced, offline=offline)
        click.echo(plan.render())
        click.echo(render_cost(app.plan_cost(root, plan)))
        return

    boards: list[ProgressBoard] = []

    def show_plan(plan: CohortPlan) -> None:
        counts = ", ".join(f"{len(p.generations)} {s}s ({len(p.work)} to run)" for s, p in plan.stages.items())
        click.echo(f"cohort {cohort_id}: {counts}", err=True)
        board = ProgressBoard(plan, enabled=sys.stderr.isatty() and plan.has_work)
        board.progress.start()
        boards.append(board)

    def listener(stage: Stage, phase: Phase, status) -> None:  # noqa: ANN001 - GenerationStatus
        if boards:
            boards[0].listener(stage, phase, status)

    outcomes: list[app.RunOutcome] = []

    def work() -> None:
        outcomes.append(app.run(root, cohort_id, stages=selected, force=forced, concurrency=concurrency,
                                max_cost=max_cost, min_lines=min_lines, chunks=chunks, report=not no_report,
                                offline=offline, progress=listener, on_plan=show_plan,
                                on_round=lambda plan: boards[0].add_round(plan) if boards else None))

    try:
        with graceful_interrupt("stopping: no new model calls; calls in flight will finish and persist "
                                "(Ctrl-C again to abort now)"):
            run_in_worker_thread(work)
    except app.ResultsFailed as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        for board in boards:
            board.progress.stop()
    outcome = outcomes[0]
    _print_summary(outcome, boards[0])
    if outcome.stopped:
        sys.exit(130)  # interrupted: the conventional exit code for SIGINT
    if outcome.failed:
        click.echo(f"some generations failed or are blocked; see `daydream status {cohort_id}`", err=True)
        sys.exit(1)


def _print_summary(outcome: app.RunOutcome, board: ProgressBoard) -> None:
    for stage, stage_plan in outcome.plan.stages.items():
        tally = board.tallies[stage]
        later = any(r.stages[stage].work for r in outcome.round_plans if stage in r.stages)
        if not stage_plan.work and not later:
            blocked = f", {len(stage_plan.blocked)} blocked" if stage_plan.blocked else ""
            click.echo(f"{stage:<11} nothing to run: {stage_plan.reused} reused{blocked}", err=True)
            continue
        click.echo(f"{stage:<11} {tally.finished}/{tally.total}  {tally.describe()}  calls {tally.calls}", err=True)
    for blocked in outcome.plan.blocked[:10]:
        click.echo(f"  blocked {blocked.stage}/{blocked.gen_id}: {blocked.reason}", err=True)
    for line in _spending_summary(outcome):
        click.echo(line, err=True)
    if outcome.stopped:
        click.echo("stopped early: re-run the same command to resume (finished work is reused)", err=True)
    if outcome.report_path:
        current = " (current: scores and membership unchanged)" if outcome.report_state == "current" else ""
        click.echo(f"report: {outcome.report_path}{current}")
        echo_explorer_hint(outcome.cohort_id)
    click.echo(f"finished in {outcome.elapsed_s:.1f}s ({len(outcome.run_ids)} Dagster run(s))", err=True)


def _spending_summary(outcome: app.RunOutcome) -> list[str]:
    """How the gate, the adaptive rounds and the tournament ended (nothing for a plain cohort)."""
    if outcome.selection is None and outcome.tournament is None:
        return []
    lines = [f"runs after the first plan, one set per decision: {len(outcome.round_plans)}"]
    if outcome.tournament is not None:
        lines.append(outcome.tournament.describe())
    if outcome.selection is None:
        return lines
    if outcome.selection.adaptive is not None:
        lines.append(outcome.selection.adaptive.describe())
    if outcome.ended_by and not (outcome.selection.adaptive and outcome.selection.adaptive.ended):
        lines.append(f"adaptive evaluation ended: {outcome.ended_by}")
    if outcome.rounds_path:
        lines.append(f"decisions: {outcome.rounds_path}")
    return lines


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


def render_cost(lines: list[ModelEstimate]) -> str:
    """The calls of a plan per stage and model with their estimated cost."""
    if not lines:
        return "no model calls in this cohort"
    out = [f"{'stage':<11} {'model':<28} {'members':>7} {'to call':>7} {'tokens in/out per call':>24} {'cost $':>10}"]
    for line in lines:
        cost = "n/a" if line.cost_usd is None else f"{line.cost_usd:.4f}"
        out.append(f"{line.stage:<11} {line.model_id:<28} {line.calls:>7} {line.remaining:>7} "
                   f"{f'{line.prompt_tokens}/{line.completion_tokens}':>24} {cost:>10}")
    total = round(sum(line.cost_usd or 0.0 for line in lines), 6)
    out.append(f"estimated cost of the planned calls: ${total:.4f}")
    unpriced = sorted({line.model_id for line in lines if line.cost_usd is None and line.remaining})
    if unpriced:
        out.append("no price in llm_models.csv for: " + ", ".join(unpriced))
    return "\n".join(out)


@click.command("reparse")
@click.argument("cohort_id")
@click.option("--stage", "stage", type=STAGE_CHOICE, required=True, help="Stage whose raw outputs to re-parse.")
@click.option("--parser", "parser_name", default=None, help="Parser to use instead of each template's parser.")
@data_root_option
def reparse(cohort_id: str, stage: Stage, parser_name: str | None, data_root: str | None) -> None:
    """Re-run the parsers over existing raw outputs of COHORT's STAGE (no model calls)."""
    root = resolve_data_root(data_root)
    report, without_raw = app.reparse(root, cohort_id, stage, parser_name)
    summary = report.summary()
    click.echo(f"{stage}: re-parsed {summary['done']} of {len(report.statuses) + without_raw} "
               f"({without_raw} without usable raw output), {summary['failed']} failed")
    for failure in report.failures[:20]:
        click.echo(f"  {failure.gen_id}: {failure.error}", err=True)
    if report.failures:
        sys.exit(1)
