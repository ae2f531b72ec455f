"""Run one phase of one stage over many generations: the unit a Dagster step executes.

Many partitions per run (DESIGN §8): the raw phase runs its model calls concurrently up to a
cap, so throughput is bounded by the provider, not by process start-up. Every generation is
attempted and persisted; failures are collected (not raised one by one) so a single bad
generation never stops its siblings. A stop request (first Ctrl-C) stops launching new calls
while calls in flight finish and persist.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from ..data_layer.claims import ClaimHeld, ClaimKeeper, ClaimStore, Lease
from ..data_layer.gens_data_layer import FAILED_FLAG
from ..errors import GenerationFailure
from ..llm import base as llm_base
from ..llm.base import (
    CallStopped,
    GenerationRequest,
    GenerationResult,
    LLMProvider,
    ensure_not_stopped,
)
from ..llm.slots import CallSlots, Priority
from ..types import STAGES, Phase, Stage
from .context import StageContext
from .parsed import run_parsed_phase
from .pipeline import ProducerBoard, known_parents, readiness
from .prompt import run_prompt_phase
from .raw import run_raw_phase
from .settings import StageSettings

Status = Literal["done", "reused", "claimed", "deferred", "failed", "skipped"]
"""``claimed``: another process held the generation's claim and produced it meanwhile; this
batch neither called nor counts it as its own work (reports say `claimed by another run`).
``deferred`` (prompt phase, pipelined runs): the parent is not parsed yet; the raw step renders
the prompt once it is (:mod:`.pipeline`)."""

CLAIMED_REASON = "claimed by another run"
CLAIM_POLL_S = 0.2
"""How often a batch looks again at a generation another process holds."""
PARENT_POLL_S = 0.02
"""How often a pipelined batch looks for waiting generations whose parents got parsed (a
memory lookup per generation: no file is read)."""

SYNC_PHASE_THREADS = 8
"""Threads for the prompt and parsed phases (file-bound work)."""

# One stop flag for the process, kept by the model layer so providers can honour it right
# before sending (after any wait for a slot or a rate-limit token). Re-exported for callers.
request_stop = llm_base.request_stop
stop_requested = llm_base.stop_requested
reset_stop = llm_base.reset_stop


@dataclass(frozen=True)
class GenerationStatus:
    """How one generation fared in one phase."""

    gen_id: str
    status: Status
    reason: str | None = None
    """Failure tag (``truncated``, ``min_lines``, ``parse_error``, ``provider_error``,
    ``provider_transient`` (a retryable provider error: rate limit, 5xx, timeout)...)."""
    error: str | None = None
    cost_usd: float = 0.0
    total_tokens: int = 0
    called_model: bool = False
    metadata: dict[str, Any] | None = None
    """The phase's metadata as persisted (raw/parsed phases)."""


@dataclass
class BatchReport:
    """Outcome of one phase over a batch of generations."""

    stage: Stage
    phase: Phase
    statuses: list[GenerationStatus] = field(default_factory=list)
    wall_s: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for s in self.statuses if s.status == status)

    @property
    def failures(self) -> list[GenerationStatus]:
        return [s for s in self.statuses if s.status == "failed"]

    @property
    def model_calls(self) -> int:
        return sum(1 for s in self.statuses if s.called_model)

    @property
    def cost_usd(self) -> float:
        return round(sum(s.cost_usd for s in self.statuses), 6)

    @property
    def total_tokens(self) -> int:
        return sum(s.total_tokens for s in self.statuses)

    def summary(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "phase": self.phase,
            "total": len(self.statuses),
            "done": self.count("done"),
            "reused": self.count("reused"),
            "claimed": self.count("claimed"),
            "deferred": self.count("deferred"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "model_calls": self.model_calls,
            "cost_usd": self.cost_usd,
            "total_tokens": self.total_tokens,
            "wall_s": round(self.wall_s, 3),
        }


ProgressCallback = Callable[[GenerationStatus], None]


def _failed(gen_id: str, exc: Exception) -> GenerationStatus:
    reason = exc.reason if isinstance(exc, GenerationFailure) else type(exc).__name__
    return GenerationStatus(gen_id=gen_id, status="failed", reason=reason, error=str(exc))


_listeners: list[Callable[[Stage, Phase, GenerationStatus], None]] = []


def add_progress_listener(listener: Callable[[Stage, Phase, GenerationStatus], None]) -> None:
    """Receive every generation status of every batch in this process (the CLI's progress bars)."""
    _listeners.append(listener)


def remove_progress_listener(listener: Callable[[Stage, Phase, GenerationStatus], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def _notify(progress: ProgressCallback | None, status: GenerationStatus, stage: Stage, phase: Phase) -> GenerationStatus:
    if progress is not None:
        progress(status)
    for listener in list(_listeners):
        listener(stage, phase, status)
    return status


def deferred_context(ctx: StageContext) -> StageContext:
    """``ctx`` writing files without a per-file fsync (the batch flushes them as a group)."""
    return dataclasses.replace(ctx, layer=ctx.layer.deferred())


def _run_sync_phase(
    stage: Stage,
    phase: Phase,
    gen_ids: Iterable[str],
    step: Callable[[str], GenerationStatus],
    progress: ProgressCallback | None,
    ctx: StageContext,
) -> BatchReport:
    report = BatchReport(stage=stage, phase=phase)
    clock = time.perf_counter()

    def guarded(gen_id: str) -> GenerationStatus:
        if stop_requested():
            return GenerationStatus(gen_id=gen_id, status="skipped", reason="stopped")
        try:
            return step(gen_id)
        except (GenerationFailure, ValueError, FileNotFoundError) as exc:
            return _failed(gen_id, exc)

    # Each generation's files are independent; threads overlap the fsync'd writes (the GIL is
    # released while the disk works). Results and progress keep the input order.
    try:
        with ThreadPoolExecutor(max_workers=SYNC_PHASE_THREADS) as pool:
            for status in pool.map(guarded, gen_ids):
                report.statuses.append(_notify(progress, status, stage, phase))
    finally:
        ctx.layer.flush()  # one group commit for the batch's files, before anyone relies on them
    report.wall_s = time.perf_counter() - clock
    return report


def run_prompt_batch(
    ctx: StageContext,
    stage: Stage,
    gen_ids: Sequence[str],
    settings: StageSettings,
    *,
    run_id: str = "",
    progress: ProgressCallback | None = None,
    board: ProducerBoard | None = None,
) -> tuple[BatchReport, dict[str, str]]:
    """Render and persist prompts; return the report and the prompts that succeeded.

    With ``board`` (a pipelined run), a generation whose parent another run of the invocation is
    still producing is ``deferred``: the raw step renders its prompt once the parent is parsed."""
    prompts: dict[str, str] = {}
    ctx = deferred_context(ctx)

    def step(gen_id: str) -> GenerationStatus:
        if board is not None and readiness(board, known_parents(ctx.layer, stage, gen_id)) == "waiting":
            return GenerationStatus(gen_id=gen_id, status="deferred", reason="parent not parsed yet")
        outcome = run_prompt_phase(ctx, stage, gen_id, settings, run_id=run_id)
        prompts[gen_id] = outcome.text
        return GenerationStatus(gen_id=gen_id, status="reused" if outcome.reused else "done")

    return _run_sync_phase(stage, "prompt", gen_ids, step, progress, ctx), prompts


def run_parsed_batch(
    ctx: StageContext,
    stage: Stage,
    gen_ids: Sequence[str],
    settings: StageSettings,
    *,
    run_id: str = "",
    parser_name: str | None = None,
    progress: ProgressCallback | None = None,
) -> BatchReport:
    """Parse raw outputs into parsed outputs for every generation."""
    ctx = deferred_context(ctx)

    def step(gen_id: str) -> GenerationStatus:
        outcome = run_parsed_phase(ctx, stage, gen_id, settings, run_id=run_id, parser_name=parser_name)
        return _parsed_status(gen_id, outcome.metadata, outcome.reused, run_id)

    return _run_sync_phase(stage, "parsed", gen_ids, step, progress, ctx)


def _parsed_status(gen_id: str, metadata: dict[str, Any], reused: bool, run_id: str) -> GenerationStatus:
    # Parsed earlier by this very run (a pipelined raw step parses at once): this run's work.
    ours = reused and bool(run_id) and metadata.get("run_id") == run_id
    return GenerationStatus(gen_id=gen_id, status="reused" if reused and not ours else "done", metadata=metadata)


def _raw_status(gen_id: str, outcome_meta: dict[str, Any], reused: bool, called: bool) -> GenerationStatus:
    usage = outcome_meta.get("usage") or {}
    return GenerationStatus(
        gen_id=gen_id,
        status="reused" if reused else "done",
        cost_usd=0.0 if reused else float(outcome_meta.get("cost_usd") or 0.0),
        total_tokens=0 if reused else int(usage.get("total_tokens") or 0),
        called_model=called,
        metadata=outcome_meta,
    )


async def run_raw_batch(
    ctx: StageContext,
    stage: Stage,
    gen_ids: Sequence[str],
    settings: StageSettings,
    llm: LLMProvider,
    *,
    concurrency: int = 16,
    run_id: str = "",
    prompts: dict[str, str] | None = None,
    progress: ProgressCallback | None = None,
    slots: CallSlots | None = None,
    claim: bool = True,
    board: ProducerBoard | None = None,
) -> BatchReport:
    """Run the raw phase for every generation with at most ``concurrency`` in flight.

    ``slots`` (default: this batch's own, ``concurrency`` of them) cap the calls in flight;
    batches overlapping in one process pass shared slots, which serve later stages and older
    batches first so that work in progress finishes before new work starts.

    With ``claim`` (default) each generation is claimed in the data root before its call
    (:mod:`~..data_layer.claims`), under ``run_id``: a generation another live process holds is
    set aside and looked at again while the rest proceeds; once that process has produced it,
    it is reported ``claimed`` (nothing called, nothing counted as done here); if that process
    rejected it, it is reported failed with that run's reason (not paid for again); if the
    holder vanished without output, this batch claims and calls it.

    With ``board`` (a pipelined run, :mod:`.pipeline`), a generation without a rendered prompt
    waits (set aside, like a claimed one) until its parents are parsed, then gets its prompt
    rendered here; every generation is parsed as soon as its raw output is there, so its own
    children can start.

    Workers pull gen ids from a queue, so memory stays flat however many generations the
    batch holds. Results keep the input order.
    """
    report = BatchReport(stage=stage, phase="raw")
    results: list[GenerationStatus | None] = [None] * len(gen_ids)
    queue: asyncio.Queue[int] = asyncio.Queue()
    # Pipelined: a generation whose parent a run of this invocation produces gets its prompt
    # rendered here (the one on disk may predate the parent's new output); it waits, with its
    # parents, until none of them is still pending.
    waiting: dict[int, list[tuple[Stage, str]]] = {}
    render_here: set[int] = set()
    for index, gen_id in enumerate(gen_ids):
        if board is not None:
            parents = known_parents(ctx.layer, stage, gen_id)
            if not (prompts and gen_id in prompts) or board.produced_here(parents):
                render_here.add(index)
            if index in render_here and readiness(board, parents) == "waiting":
                waiting[index] = parents
                continue
        queue.put_nowait(index)
    clock = time.perf_counter()

    if slots is None:
        slots = CallSlots(concurrency)
    else:
        concurrency = min(concurrency, slots.capacity)
    llm = _SlotLimitedProvider(llm, slots, (_stage_rank(stage, pipelined=board is not None), slots.next_batch_number()))
    ctx = deferred_context(ctx)
    group = GroupCommit(ctx.layer.flush)
    claims = ClaimStore(ctx.layer.data_root, run_id) if claim else None
    held_elsewhere: dict[int, Lease] = {}
    set_aside: list[tuple[float, int]] = []  # (look again at, index), a heap
    loop = asyncio.get_running_loop()

    async def one(index: int) -> GenerationStatus | None:
        """The generation's status, or ``None`` while another process holds its claim."""
        gen_id = gen_ids[index]
        if stop_requested():
            return GenerationStatus(gen_id=gen_id, status="skipped", reason="stopped")
        waited_for = held_elsewhere.get(index)
        if waited_for is not None:
            rejected = _rejected_by(ctx, stage, gen_id, waited_for)
            if rejected is not None:
                return rejected
        prompt = prompts.get(gen_id) if prompts else None
        if index in render_here:
            try:
                # Off the event loop: a wave of answers makes many children ready at once, and
                # rendering their prompts one by one here would hold back every other call.
                rendered = await asyncio.to_thread(run_prompt_phase, ctx, stage, gen_id, settings, run_id=run_id)
                prompt = rendered.text
            except (GenerationFailure, ValueError, FileNotFoundError) as exc:
                return _failed(gen_id, exc)
        try:
            outcome = await run_raw_phase(ctx, stage, gen_id, settings, llm, run_id=run_id, prompt=prompt,
                                          commit=group.commit, claims=claims)
        except ClaimHeld as exc:
            held_elsewhere[index] = exc.lease
            return None
        except CallStopped:
            return GenerationStatus(gen_id=gen_id, status="skipped", reason="stopped")
        except GenerationFailure as exc:
            status = _failed(gen_id, exc)
            # A rejected output was still paid for: keep its cost and tokens in the totals.
            if exc.reason in ("truncated", "min_lines") and ctx.layer.raw_metadata_path(stage, gen_id).is_file():
                meta = ctx.layer.read_raw_metadata(stage, gen_id)
                failed = _raw_status(gen_id, meta, reused=False, called=meta.get("attempts", 0) > 0)
                status = dataclasses.replace(failed, status="failed", reason=exc.reason, error=str(exc))
            return status
        except (ValueError, FileNotFoundError) as exc:
            return _failed(gen_id, exc)
        if outcome.reused and waited_for is not None:
            return GenerationStatus(gen_id=gen_id, status="claimed", reason=CLAIMED_REASON,
                                    error=f"produced by {waited_for.describe()}", metadata=outcome.metadata)
        return _raw_status(gen_id, outcome.metadata, outcome.reused, outcome.called_model)

    last_scan = [0.0]

    def release_ready() -> None:
        """Queue the waiting generations whose parents are no longer pending (at most one scan
        per poll interval, whichever worker asks)."""
        if loop.time() - last_scan[0] < PARENT_POLL_S:
            return
        last_scan[0] = loop.time()
        for index in [i for i, parents in waiting.items() if readiness(board, parents) == "ready"]:  # type: ignore[arg-type]
            del waiting[index]
            queue.put_nowait(index)

    async def next_index() -> int | None:
        while True:
            if waiting:
                release_ready()
            try:
                return queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            if set_aside and set_aside[0][0] <= loop.time():
                return heapq.heappop(set_aside)[1]
            if not waiting and not set_aside:
                return None
            pause = PARENT_POLL_S if waiting else set_aside[0][0] - loop.time()
            if set_aside:
                pause = min(pause, set_aside[0][0] - loop.time())
            await asyncio.sleep(max(0.0, pause))

    async def parse_now(status: GenerationStatus) -> None:
        """Pipelined runs parse each raw output at once (children wait for it); a failure here
        is left for the parsed step to record and report. The parsed files become durable with
        the batch's next group commit (at the latest its final flush), as a parsed batch's do."""
        try:
            outcome = await asyncio.to_thread(run_parsed_phase, ctx, stage, status.gen_id, settings, run_id=run_id)
        except (GenerationFailure, ValueError, FileNotFoundError):
            return
        assert board is not None
        board.parsed(stage, status.gen_id)
        _notify(progress, _parsed_status(status.gen_id, outcome.metadata, outcome.reused, run_id), stage, "parsed")

    async def worker() -> None:
        while (index := await next_index()) is not None:
            status = await one(index)
            if status is None:
                heapq.heappush(set_aside, (loop.time() + CLAIM_POLL_S, index))
                continue
            results[index] = _notify(progress, status, stage, "raw")
            if board is not None and status.status in ("done", "reused", "claimed"):
                await parse_now(status)

    # Twice as many workers as call slots: while one worker handles a finished response (files,
    # metadata), another has its next request prepared and waiting for the freed slot, so the
    # provider sees ``concurrency`` calls in flight without gaps; the slots cap calls in flight.
    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(2 * concurrency, len(gen_ids))))]
    keeper = ClaimKeeper(claims) if claims is not None else contextlib.nullcontext()
    try:
        with keeper:
            await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        if board is not None:
            await asyncio.to_thread(ctx.layer.flush)  # what parse_now wrote after the last commit
    report.statuses = [s for s in results if s is not None]
    report.wall_s = time.perf_counter() - clock
    return report


def _rejected_by(ctx: StageContext, stage: Stage, gen_id: str, lease: Lease) -> GenerationStatus | None:
    """A failed status when the run that held the claim persisted a rejected output (truncated,
    too short...): calling again would pay for the same answer; ``None`` otherwise."""
    path = ctx.layer.raw_metadata_path(stage, gen_id)
    if not lease.run_id or not path.is_file():
        return None
    try:
        meta = ctx.layer.read_raw_metadata(stage, gen_id)
    except ValueError:
        return None
    if meta.get("run_id") != lease.run_id or not meta.get(FAILED_FLAG):
        return None
    reason = str(meta.get("failure_reason") or "failed")
    return GenerationStatus(gen_id=gen_id, status="failed", reason=reason, metadata=meta,
                            error=f"rejected ({reason}) by {lease.describe()}, which held its claim: "
                            f"{meta.get('error') or reason}")


class GroupCommit:
    """Makes deferred writes durable in groups, as databases commit: :meth:`commit` returns once
    a flush that started after the call has finished, so one flush covers every generation
    whose files were written while the previous flush ran (64 answers arriving together cost
    one or two flushes, not 128 fsyncs). One per batch, used from its event loop."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._started = 0
        self._finished = 0
        self._running = False
        self._error: BaseException | None = None
        self._changed = asyncio.Condition()

    async def commit(self) -> None:
        needed = self._started + 1  # a flush already running may predate the caller's writes
        async with self._changed:
            while self._finished < needed:
                if not self._running:
                    self._running = True
                    self._started += 1
                    asyncio.get_running_loop().create_task(self._run_flush())
                await self._changed.wait()
            if self._error is not None:
                raise self._error

    async def _run_flush(self) -> None:
        error: BaseException | None = None
        try:
            await asyncio.to_thread(self._flush)
        except Exception as exc:  # surfaced to every waiter of this flush
            error = exc
        async with self._changed:
            self._error = error
            self._finished += 1
            self._running = False
            self._changed.notify_all()


def _stage_rank(stage: Stage, *, pipelined: bool = False) -> int:
    """Chunked runs: later stages first, an evaluation is closer to a finished result than a
    draft. Pipelined runs: earlier stages first, the longest chain still ahead first (a draft
    still has its essay and evaluations to come), which finishes the whole cohort soonest: the
    last calls are then evaluations, many of them side by side, not a late draft's chain."""
    return STAGES.index(stage) if pipelined else len(STAGES) - 1 - STAGES.index(stage)


class _SlotLimitedProvider(LLMProvider):
    """Wraps a provider so its calls hold one of ``slots`` while in flight."""

    def __init__(self, inner: LLMProvider, slots: CallSlots, priority: Priority) -> None:
        self.inner = inner
        self.name = inner.name
        self._slots = slots
        self._priority = priority

    def served_by(self, model_id: str) -> str | None:
        return self.inner.served_by(model_id)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        async with self._slots.slot(self._priority):
            # A request may have waited for its slot since before a stop request: check again.
            ensure_not_stopped(request)
            return await self.inner.generate(request)


def run_raw_batch_sync(*args: Any, **kwargs: Any) -> BatchReport:
    """:func:`run_raw_batch` from synchronous code (a fresh event loop per call)."""
    return asyncio.run(run_raw_batch(*args, **kwargs))
