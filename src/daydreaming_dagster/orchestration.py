"""Launch Dagster runs for a cohort: few runs, many partitions each (DESIGN §8).

A cohort's gen ids are registered in membership order, so they usually form one contiguous
range of their stage's dynamic partitions; each contiguous segment becomes one Dagster run
(``BackfillPolicy.single_run()`` assets see the whole range in ``context.partition_keys``).
When a step fails because some generations failed, the phases after it run again over the same
range, so the generations that succeeded still go all the way through.

A whole cohort (:func:`run_cohort`) runs by default with no stage barrier
(:func:`run_pipelined`): one run per stage, the runs overlapping while calls are slow, each
generation starting as soon as its parent is parsed. It can instead be split into a few chunks
(drafts in slices, each essay with its draft, each evaluation with its essay) whose stage runs
overlap: while one chunk's essays are being prompted, another chunk's drafts keep the model
calls flowing. Either way the raw steps share one cap on calls in flight
(``LLMResource.scope``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dagster import DagsterInstance, materialize

from .dagster_settings import apply_dagster_event_settings
from .data_layer._storage import create_exclusive
from .partitions import partitions_name
from .stages.batch import stop_requested
from .types import PHASES, STAGES, Phase, Stage

apply_dagster_event_settings()

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
DEFAULT_DAGSTER_HOME = ".dagster_home"


def get_instance() -> DagsterInstance:
    """The Dagster instance under ``DAGSTER_HOME`` (default: ``./.dagster_home``, created)."""
    return _open_once(get_instance_home(), DagsterInstance.get)


INIT_LOCK_NAME = ".daydream-init.lock"
_INIT_ATTEMPTS = 20


def _open_once(home: Path, open_instance: Callable[[], DagsterInstance]) -> DagsterInstance:
    """Open the instance under ``home`` while holding a lock file beside its databases.

    Opening a fresh SQLite instance creates its schema; two processes doing that at once make
    one die on ``table secondary_indexes already exists`` (Dagster's run storage does not
    retry). Our processes take turns through an advisory lock; a process outside our control
    (a webserver, a daemon) racing us still yields a schema error, which is retried: by then
    the other process has created the tables and opening merely reads them.
    """
    import fcntl
    import sqlite3
    import time

    from sqlalchemy.exc import DatabaseError

    for attempt in range(_INIT_ATTEMPTS):
        with open(home / INIT_LOCK_NAME, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                return open_instance()
            except (sqlite3.DatabaseError, DatabaseError) as exc:
                text = str(exc)
                if attempt == _INIT_ATTEMPTS - 1 or not ("already exists" in text or "database is locked" in text
                                                         or "UNIQUE constraint failed" in text):
                    raise
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def get_instance_home() -> Path:
    """``DAGSTER_HOME`` (default and exported: ``./.dagster_home``), created with a
    ``dagster.yaml`` when it has none."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(DEFAULT_DAGSTER_HOME).resolve())
        os.environ["DAGSTER_HOME"] = home
    home_path = Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    config = home_path / "dagster.yaml"
    if not config.exists():
        # An explicit (default: SQLite under DAGSTER_HOME) config silences Dagster's first-run
        # banners; telemetry stays off for an offline research tool. Created whole or not at
        # all: a process starting beside us must never read a half-written file.
        create_exclusive(config, b"telemetry:\n  enabled: false\n")
    return home_path


NO_COMPUTE_LOGS = {
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
}
"""Instance override for runs executed inside this process (see :func:`in_process_instance`)."""


def in_process_instance() -> DagsterInstance:
    """The instance under ``DAGSTER_HOME``, set up for running many runs inside this process.

    - No compute-log capture: capturing redirects the process's stdout/stderr file
      descriptors per run (and starts a ``tail`` process to mirror them), so runs overlapping
      in threads would swap each other's streams. Our steps print nothing; what they do is in
      the event log and step metadata, which the Dagster UI shows as for any run.
    - Pooled database connections: the storages otherwise open a connection per query, which
      is most of the cost of each event write. PostgreSQL through Dagster's own pool settings
      (statements get no timeout, as with the default); SQLite (the default storage) through
      :mod:`~daydreaming_dagster.dagster_storage`, the same storage over the same files with
      its engines kept open.

    Runs launched through the daemon or the UI use :func:`get_instance`'s configuration.
    """
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef

    from .dagster_storage import pooled_storage_override

    home = get_instance_home()
    configured, _ = dagster_instance_config(str(home))
    overrides = {**NO_COMPUTE_LOGS, **(pooled_storage_override(configured, str(home)) or {})}
    instance = _open_once(home, lambda: DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=overrides)))
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=32)
    _build_python_log_handlers_once(instance)
    return instance


def _build_python_log_handlers_once(instance: DagsterInstance) -> None:
    """Build the ``python_logs`` handlers of dagster.yaml now, once, and reuse them per run.

    Dagster calls ``logging.config.dictConfig`` for every run it starts (whenever dagster.yaml
    has any setting). That takes the logging module's lock and then every handler's lock,
    while a run already emitting events holds its handler's lock and asks for the module's:
    runs overlapping in threads deadlock. The handlers are the same objects either way.
    """
    handlers = list(instance.get_yaml_python_handlers())
    instance.get_yaml_python_handlers = lambda: handlers  # type: ignore[method-assign]


def register_keys(instance: DagsterInstance, stage: Stage, gen_ids: Sequence[str]) -> int:
    """Add-only registration of gen ids, in the given order; returns how many were new."""
    from sqlalchemy.exc import IntegrityError

    name = partitions_name(stage)
    for attempt in range(_INIT_ATTEMPTS):
        existing = set(instance.get_dynamic_partitions(name))
        new = [g for g in dict.fromkeys(gen_ids) if g not in existing]
        if not new:
            return 0
        try:
            instance.add_dynamic_partitions(name, new)
            return len(new)
        except IntegrityError:
            # Another process registered some of these keys between our read and our insert
            # (two runs of one cohort starting together): read again and add the rest.
            if attempt == _INIT_ATTEMPTS - 1:
                raise
    return 0


def contiguous_segments(all_keys: Sequence[str], wanted: Iterable[str]) -> list[list[str]]:
    """Split ``wanted`` into runs of keys adjacent in ``all_keys`` (the partition order).

    Raises ``ValueError`` naming a key that is not registered.
    """
    position = {key: index for index, key in enumerate(all_keys)}
    indices = []
    for key in dict.fromkeys(wanted):
        if key not in position:
            raise ValueError(f"gen id {key!r} is not a registered partition; register the cohort first")
        indices.append(position[key])
    indices.sort()
    segments: list[list[str]] = []
    for index in indices:
        if segments and position[segments[-1][-1]] == index - 1:
            segments[-1].append(all_keys[index])
        else:
            segments.append([all_keys[index]])
    return segments


@dataclass
class StageRun:
    """What the runs of one stage did."""

    stage: Stage
    run_ids: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    success: bool = True


def work_spans(all_keys: Sequence[str], work: Iterable[str], cover: Iterable[str]) -> list[list[str]]:
    """Key ranges that hold every ``work`` key, as few as possible, each within a contiguous run
    of ``cover`` keys (the keys a range may pass over: their phases are reused, at the cost of a
    file check each, instead of splitting the range into one run per key)."""
    wanted = set(work)
    spans = []
    for segment in contiguous_segments(all_keys, [*cover, *wanted]):
        hits = [index for index, key in enumerate(segment) if key in wanted]
        if hits:
            spans.append(segment[hits[0]:hits[-1] + 1])
    return spans


def run_stage(
    instance: DagsterInstance,
    assets: Sequence[Any],
    stage: Stage,
    gen_ids: Sequence[str],
    resources: dict[str, Any],
    *,
    phases: Sequence[Phase] = PHASES,
    tags: dict[str, str] | None = None,
    log_level: str = "CRITICAL",
    cover: Sequence[str] = (),
) -> StageRun:
    """Materialise ``phases`` of ``stage`` for ``gen_ids`` in as few runs as possible.

    ``cover`` lists keys a run's range may include besides ``gen_ids`` (see :func:`work_spans`).
    """
    outcome = StageRun(stage=stage)
    if not gen_ids:
        return outcome
    all_keys = instance.get_dynamic_partitions(partitions_name(stage))
    for segment in work_spans(all_keys, gen_ids, cover):
        remaining = [p for p in PHASES if p in phases]
        while remaining:
            selection = [f"{stage}_{phase}" for phase in remaining]
            run_tags = {**(tags or {}), "daydream/stage": stage,
                        RANGE_START_TAG: segment[0], RANGE_END_TAG: segment[-1]}
            result = materialize(
                assets, selection=selection, instance=instance, resources=resources,
                tags=run_tags, raise_on_error=False, run_config=quiet_run_config(log_level),
            )
            outcome.run_ids.append(result.run_id)
            if result.success:
                break
            outcome.success = False
            if stop_requested():
                break  # Ctrl-C: launch nothing more; a re-run resumes
            if _stopped_by_preflight(result):
                break  # a configuration problem: later phases would only fail the same way
            failed = _failed_phase(result, stage, remaining)
            if failed is None:
                break  # not a generation failure (e.g. resource error): nothing later can help
            outcome.failed_steps.append(f"{stage}_{failed}")
            remaining = remaining[remaining.index(failed) + 1:]
    return outcome


def quiet_run_config(log_level: str = "CRITICAL") -> dict[str, Any]:
    """Run config that keeps Dagster's console logger to ``log_level``: the CLI draws its own
    progress and prints one line per failure summary, so step tracebacks would only bury it;
    the event log in the instance (and the Dagster UI) keeps everything."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def _stopped_by_preflight(result: Any) -> bool:
    from .preflight import PREFLIGHT_METADATA_KEY

    for event in result.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data if data is not None else None
        if user is not None and PREFLIGHT_METADATA_KEY in (user.metadata or {}):
            return True
    return False


def _failed_phase(result: Any, stage: Stage, phases: list[Phase]) -> Phase | None:
    failed_keys = {event.step_key for event in result.get_step_failure_events()}
    for phase in phases:
        if f"{stage}_{phase}" in failed_keys:
            return phase
    return None



MAX_CHUNKS = 8
CHUNK_TAG = "daydream/chunk"


def default_chunk_count(drafts: int, concurrency: int) -> int:
    """Chunks for overlapping a cohort's stages: one per ``concurrency`` drafts (a chunk alone
    can fill every call slot), at most :data:`MAX_CHUNKS` (each chunk costs a run per stage)."""
    return max(1, min(MAX_CHUNKS, drafts // max(1, concurrency)))


def plan_chunks(
    members: Mapping[Stage, Sequence[str]], parents: Mapping[str, str | None], chunks: int
) -> list[dict[Stage, list[str]]]:
    """Split a cohort into at most ``chunks`` parts whose stages can run independently.

    Drafts go in contiguous slices of membership order (so each chunk's range is contiguous);
    each essay goes with its parent draft and each evaluation with its parent essay, in
    membership order. A generation whose parent is not in the cohort goes to the first chunk.
    Empty chunks are dropped.
    """
    drafts = list(members.get("draft", ()))
    count = max(1, min(chunks, len(drafts))) if drafts else 1
    plan: list[dict[Stage, list[str]]] = [{stage: [] for stage in STAGES} for _ in range(count)]
    chunk_of: dict[str, int] = {}
    for index, gen_id in enumerate(drafts):
        chunk = index * count // len(drafts)
        chunk_of[gen_id] = chunk
        plan[chunk]["draft"].append(gen_id)
    for stage in STAGES[1:]:
        for gen_id in members.get(stage, ()):
            chunk = chunk_of.get(parents.get(gen_id) or "", 0)
            chunk_of[gen_id] = chunk
            plan[chunk][stage].append(gen_id)
    return [chunk for chunk in plan if any(chunk.values())]


Overlap = Literal["auto", "always"]
SLOW_CALL_S = 1.0
"""Calls holding their slot at least this long make overlapping chunks worth their extra runs."""
_POLL_S = 0.05


def run_cohort(
    instance: DagsterInstance,
    assets: Sequence[Any],
    plan: Sequence[Mapping[Stage, Sequence[str]]],
    stages: Sequence[Stage],
    resources: dict[str, Any],
    *,
    overlap: Overlap = "auto",
    tags: dict[str, str] | None = None,
    log_level: str = "CRITICAL",
    work: Mapping[Stage, Iterable[str]] | None = None,
    phases: Mapping[Stage, Sequence[Phase]] | None = None,
    pipeline: str | None = None,
) -> dict[Stage, StageRun]:
    """Run ``stages`` (in order) for every chunk of ``plan``; returns the outcome per stage.

    ``pipeline`` (a name unique to the invocation, for a one-chunk ``plan``) removes the stage
    barrier instead of chunking: see :func:`run_pipelined`.

    ``work`` (from :mod:`~daydreaming_dagster.planning`) limits each stage to the generations
    with something to do: a chunk's stage without work launches no run, and a run's range spans
    only from its first to its last generation with work. ``phases`` limits the steps of a
    stage's runs (a stage that only needs parsing runs only its parsed step).

    Each chunk runs in its own thread, one :func:`run_stage` per stage. Overlap pays when model
    calls are slow (the next chunk's calls fill the slots while a chunk moves between stages)
    and costs when they are fast (each chunk is three more Dagster runs competing for the same
    CPU), so with ``overlap="auto"`` the first chunk runs alone until its calls show which case
    this is: as soon as one holds its slot for :data:`SLOW_CALL_S` the other chunks start
    beside it; if the first chunk finishes first, the others run merged into one.
    ``overlap="always"`` starts every chunk at once.

    Overlapping chunks must share one call cap and budget, so ``resources["llm"]`` needs a
    ``scope`` when ``plan`` has several chunks.
    """
    llm = resources.get("llm")
    if pipeline is not None and len(plan) == 1:
        return run_pipelined(instance, assets, plan[0], stages, resources, pipeline, overlap=overlap, tags=tags,
                             log_level=log_level, work=work, phases=phases)
    if len(plan) > 1 and getattr(llm, "scope", None) is None:
        raise ValueError("overlapping chunks need resources['llm'] with a scope (one shared call cap and budget)")
    outcomes: dict[Stage, StageRun] = {stage: StageRun(stage=stage) for stage in stages}
    lock = threading.Lock()
    todo = {stage: set((work or {}).get(stage, ())) for stage in STAGES} if work is not None else None

    def run_chunk(chunk: Mapping[Stage, Sequence[str]], label: str | None) -> None:
        chunk_tags = {**(tags or {}), CHUNK_TAG: label} if label else tags
        for stage in stages:
            if stop_requested():
                return
            members = chunk.get(stage) or []
            gen_ids = [g for g in members if g in todo[stage]] if todo is not None else members
            if not gen_ids:
                continue
            outcome = run_stage(instance, assets, stage, gen_ids, resources, tags=chunk_tags, log_level=log_level,
                                cover=members, phases=(phases or {}).get(stage, PHASES))
            with lock:
                merged = outcomes[stage]
                merged.run_ids += outcome.run_ids
                merged.failed_steps += outcome.failed_steps
                merged.success = merged.success and outcome.success

    if len(plan) <= 1:
        for chunk in plan:
            run_chunk(chunk, None)
        return outcomes
    labels = [f"{index + 1}/{len(plan)}" for index in range(len(plan))]
    with ThreadPoolExecutor(max_workers=len(plan), thread_name_prefix="daydream-chunk") as pool:
        if overlap == "always":
            futures = [pool.submit(run_chunk, chunk, label) for chunk, label in zip(plan, labels, strict=True)]
        else:
            futures = _run_first_then_decide(pool, run_chunk, plan, labels, llm.call_slots())
        for future in futures:
            future.result()
    return outcomes


def run_pipelined(
    instance: DagsterInstance,
    assets: Sequence[Any],
    members: Mapping[Stage, Sequence[str]],
    stages: Sequence[Stage],
    resources: dict[str, Any],
    name: str,
    *,
    overlap: Overlap = "auto",
    tags: dict[str, str] | None = None,
    log_level: str = "CRITICAL",
    work: Mapping[Stage, Iterable[str]] | None = None,
    phases: Mapping[Stage, Sequence[Phase]] | None = None,
) -> dict[Stage, StageRun]:
    """One Dagster run per stage, the stages' runs overlapping with no barrier between them: a
    generation starts as soon as its parent is parsed (:mod:`~.stages.pipeline`).

    Every run carries :data:`~.stages.pipeline.PIPELINE_TAG` = ``name``; their steps share the
    invocation's :class:`~.stages.pipeline.ProducerBoard`, which lists the generations still to
    be produced (``work``, default ``members``). With ``overlap="auto"`` the first stage's run
    starts alone; the later stages' runs start beside it as soon as calls prove slow
    (:data:`SLOW_CALL_S`), else each after the previous one (fast calls gain nothing from
    overlapping, and concurrent runs would compete for the CPU). ``"always"`` starts all at once.
    """
    from .stages.pipeline import PIPELINE_TAG, close_producer_board, open_producer_board

    board = open_producer_board(name)
    todo = {stage: [g for g in members.get(stage, ()) if work is None or g in set(work.get(stage, ()))]
            for stage in stages}
    for stage in stages:
        board.expect(stage, todo[stage])
    run_tags = {**(tags or {}), PIPELINE_TAG: name}
    outcomes: dict[Stage, StageRun] = {stage: StageRun(stage=stage) for stage in stages}

    def run_one(stage: Stage) -> None:
        try:
            if todo[stage] and not stop_requested():
                outcomes[stage] = run_stage(instance, assets, stage, todo[stage], resources, tags=run_tags,
                                            log_level=log_level, cover=members.get(stage, ()),
                                            phases=(phases or {}).get(stage, PHASES))
        finally:
            board.finished(stage, todo[stage])  # children of what failed may go on (and fail)

    def run_rest_in_order(rest: Sequence[Stage]) -> None:
        for stage in rest:
            run_one(stage)

    try:
        llm = resources.get("llm")
        if len(stages) <= 1 or getattr(llm, "scope", None) is None:
            run_rest_in_order(stages)  # overlapping runs need one shared call cap (a scope)
            return outcomes
        slots = llm.call_slots()
        with ThreadPoolExecutor(max_workers=len(stages), thread_name_prefix="daydream-stage") as pool:
            futures = [pool.submit(run_one, stages[0])]
            if overlap == "always":
                futures += [pool.submit(run_one, stage) for stage in stages[1:]]
            else:
                while not wait([futures[0]], timeout=_POLL_S).done:
                    if slots.longest_hold_s() >= SLOW_CALL_S and not stop_requested():
                        futures += [pool.submit(run_one, stage) for stage in stages[1:]]
                        break
                else:
                    futures.append(pool.submit(run_rest_in_order, stages[1:]))
            for future in futures:
                future.result()
    finally:
        close_producer_board(name)
    return outcomes


def _run_first_then_decide(
    pool: ThreadPoolExecutor,
    run_chunk: Any,
    plan: Sequence[Mapping[Stage, Sequence[str]]],
    labels: list[str],
    slots: Any,
) -> list[Future[None]]:
    """Start the first chunk; then the rest, side by side once calls prove slow, or merged
    into one chunk after the first if it finishes while calls are fast."""
    first = pool.submit(run_chunk, plan[0], labels[0])
    while not wait([first], timeout=_POLL_S).done:
        if slots.longest_hold_s() >= SLOW_CALL_S and not stop_requested():
            rest = zip(plan[1:], labels[1:], strict=True)
            return [first, *(pool.submit(run_chunk, chunk, label) for chunk, label in rest)]
    first.result()  # an orchestration error in the first chunk stops here
    merged = {stage: [g for chunk in plan[1:] for g in chunk.get(stage, ())] for stage in STAGES}
    return [first, pool.submit(run_chunk, merged, f"2-{len(plan)}/{len(plan)}")]
