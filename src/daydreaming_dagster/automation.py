"""Dagster automation: keep cohorts current, report failed runs, pick the executor.

- :data:`cohort_automation_sensor` (registers cohort partitions as specs appear): adds a
  ``cohorts`` partition for every new spec, and when a cohort's spec or any raw catalog,
  template or concept file changes *by content* (SHA-256 fingerprints kept in the sensor
  cursor, see :mod:`.fingerprints`) it requests :data:`cohort_job` for that cohort, which
  rebuilds the cohort and registers its new gen ids. With auto-run on (env
  ``DAYDREAMING_AUTO_RUN=1``) it then launches the generation stages for the cohort, one stage
  after another, one run per contiguous key range (split into ``DAYDREAMING_RUN_CHUNK`` keys
  when set, so several workers share a stage). Finished generations are reused, and a template
  edit re-renders prompts, so only the generations rendered from the edited template (and their
  descendants) call a model again; the tick log names them (:func:`.fingerprints.affected_generations`).
  A cohort with a gate or adaptive evaluation (docs/adaptive.md) goes round by round: once every
  stage run of a round has finished (never while one runs), the sensor decides again from the
  outcomes on disk and, if more members are allowed, launches the essay and evaluation stages
  again (the steps skip what is still held back and reuse what is done).
- :data:`generation_failure_sensor` (``@run_failure_sensor``): for a failed generation run it
  lists the unfinished gen ids with their error and ``raw_failure.log`` path in the log and in
  ``cohorts/<cohort>/reports/failures_<run_id>.json`` (:mod:`.failures`).
- :func:`executor_from_env`: ``DAYDREAMING_EXECUTOR=celery`` makes every job run its steps on
  Dagster's celery executor (``dagster-celery``; broker/backend from
  ``DAYDREAMING_CELERY_BROKER``/``DAYDREAMING_CELERY_BACKEND``), ``in_process`` on one process.

Launching several range runs at once lives in :mod:`.range_runs` (it needs the definitions,
which import this module).
"""

# No `from __future__ import annotations`: Dagster inspects the context annotations.
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dagster import (
    AssetSelection,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    ExecutorDefinition,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
    run_failure_sensor,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from .assets.generation import stage_group
from .cohorts import discover_cohorts, read_membership
from .data_layer import GensDataLayer
from .errors import ConfigError
from .failures import (
    COHORT_TAG,
    PROVIDER_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    ROUND_TAG,
    STAGE_TAG,
    run_failure_report,
    write_failure_report,
)
from .fingerprints import (
    affected_generations,
    changed_files,
    changed_templates,
    cohort_fingerprint,
    raw_fingerprints,
    spec_fingerprints,
)
from .orchestration import contiguous_segments
from .partitions import cohort_partitions, partitions_name
from .resources import DataRootResource
from .types import STAGES, Stage

AUTO_RUN_ENV = "DAYDREAMING_AUTO_RUN"
RUN_CHUNK_ENV = "DAYDREAMING_RUN_CHUNK"
EXECUTOR_ENV = "DAYDREAMING_EXECUTOR"
CELERY_BROKER_ENV = "DAYDREAMING_CELERY_BROKER"
CELERY_BACKEND_ENV = "DAYDREAMING_CELERY_BACKEND"
FINGERPRINT_TAG = "daydream/fingerprint"
AUTORUN_TAG = "daydream/autorun"
"""``<cohort>:<fingerprint>:<stage>`` on every run the sensor launches for a stage."""

# -- jobs ----------------------------------------------------------------------------------
cohort_job = define_asset_job(
    "cohort_job",
    selection=AssetSelection.groups("cohort"),  # partitioned like its assets (by cohort)
    description="Build one cohort (membership, metadata seeds) and register its gen ids.",
)
STAGE_JOBS: dict[Stage, UnresolvedAssetJobDefinition] = {
    stage: define_asset_job(
        f"{stage}_generation_job",
        selection=AssetSelection.groups(stage_group(stage)),  # partitioned like its assets (gen ids)
        description=f"Prompt, raw and parsed {stage} generations over a range of gen ids "
        "(one run per contiguous range: tags dagster/asset_partition_range_start/end).",
    )
    for stage in STAGES
}
AUTOMATION_JOBS = [cohort_job, *STAGE_JOBS.values()]


def executor_from_env(environ: dict[str, str] | None = None) -> ExecutorDefinition | None:
    """The executor ``DAYDREAMING_EXECUTOR`` names: ``celery``, ``in_process``, ``multiprocess``;
    ``None`` (unset) keeps Dagster's default. A bad name or a missing broker is a ConfigError."""
    env = os.environ if environ is None else environ
    name = (env.get(EXECUTOR_ENV) or "").strip().lower()
    if not name:
        return None
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "celery":
        broker = env.get(CELERY_BROKER_ENV)
        if not broker:
            raise ConfigError(f"{EXECUTOR_ENV}=celery needs {CELERY_BROKER_ENV} (e.g. redis://127.0.0.1:6379/7)")
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {"broker": broker, "backend": env.get(CELERY_BACKEND_ENV) or broker},
            name="celery_executor",
        )
    raise ConfigError(f"{EXECUTOR_ENV}={name!r} is not an executor; use celery, in_process or multiprocess")


def llm_pool_name() -> str:
    """The concurrency pool of the raw assets (``DAYDREAMING_LLM_POOL``, default ``llm``)."""
    from .assets.generation import LLM_POOL_ENV

    return os.environ.get(LLM_POOL_ENV) or "llm"


def ensure_pool_limit(instance: DagsterInstance, pool: str | None = None) -> None:
    """Create the pool's limit row (from ``concurrency.pools.default_limit``) before runs start.

    Several runs starting at once on a fresh instance each try to insert it, and all but one
    fail on the unique key (Dagster 1.13, PostgreSQL); creating it first avoids that race.
    """
    storage = instance.event_log_storage
    name = pool or llm_pool_name()
    if not storage.supports_global_concurrency_limits or name in storage.get_concurrency_keys():
        return
    try:
        storage.initialize_concurrency_limit_to_default(name)
    except Exception:  # noqa: BLE001 - someone else created it meanwhile: that is the goal
        if name not in storage.get_concurrency_keys():
            raise


# -- run planning (pure helpers) -----------------------------------------------------------
def split_segment(segment: Sequence[str], chunk: int) -> list[list[str]]:
    """Cut a contiguous key range into consecutive chunks of at most ``chunk`` keys (0: whole)."""
    keys = list(segment)
    if chunk <= 0 or len(keys) <= chunk:
        return [keys] if keys else []
    return [keys[i : i + chunk] for i in range(0, len(keys), chunk)]


def stage_run_ranges(stage_keys: Sequence[str], gen_ids: Sequence[str], chunk: int = 0) -> list[list[str]]:
    """The key ranges of the runs covering ``gen_ids``: contiguous segments of the stage's
    partition order, each cut into chunks of ``chunk`` keys (so several workers share a stage)."""
    return [part for segment in contiguous_segments(stage_keys, gen_ids) for part in split_segment(segment, chunk)]


def stage_providers(data_root: str, stage: Stage, gen_ids: Sequence[str]) -> str:
    """The ``daydream/provider`` tag value for a run over ``gen_ids``: the catalog provider of
    their models (``a+b`` when several, ``none`` for copy-only runs). Run-queue tag limits
    key on it (deploy/dagster.yaml)."""
    from .catalogs import load_models

    layer = GensDataLayer.from_root(data_root)
    models = load_models(data_root)
    providers = set()
    for gen_id in gen_ids:
        meta = layer.read_main_metadata(stage, gen_id)
        model_id = meta.get("llm_model_id")
        if meta.get("mode") == "llm" and model_id in models:
            providers.add(models[model_id].provider)
    return "+".join(sorted(providers)) or "none"


def stage_run_requests(
    instance: DagsterInstance, data_root: str, cohort: str, stage: Stage, *, chunk: int = 0,
    extra_tags: dict[str, str] | None = None,
) -> list[RunRequest]:
    """One RunRequest of ``<stage>_generation_job`` per key range of the cohort's stage."""
    gen_ids = read_membership(data_root, cohort)[stage]
    if not gen_ids:
        return []
    stage_keys = instance.get_dynamic_partitions(partitions_name(stage))
    requests = []
    for keys in stage_run_ranges(stage_keys, gen_ids, chunk):
        tags = {COHORT_TAG: cohort, STAGE_TAG: stage, RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1],
                PROVIDER_TAG: stage_providers(data_root, stage, keys), **(extra_tags or {})}
        requests.append(RunRequest(job_name=STAGE_JOBS[stage].name, tags=tags))
    return requests


# -- the cohort sensor ---------------------------------------------------------------------
@dataclass
class AutomationCursor:
    """What the sensor remembers between ticks (JSON in the sensor cursor)."""

    raw: dict[str, str] = field(default_factory=dict)
    """``1_raw/...`` file -> content digest at the last tick."""
    cohorts: dict[str, str] = field(default_factory=dict)
    """cohort -> fingerprint last requested a build for."""
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    """cohort -> auto-run progress: ``fingerprint``, ``stage`` launched (``""``: waiting for
    the build), ``runs`` (how many runs that stage got); for a gated or adaptive cohort also
    ``round`` and ``allowed`` (digest of the members its decisions allowed when the round began)."""

    @classmethod
    def load(cls, text: str | None) -> "AutomationCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(data.get("raw", {}), data.get("cohorts", {}), data.get("pending", {}))

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def auto_run_enabled(environ: dict[str, str] | None = None) -> bool:
    """``DAYDREAMING_AUTO_RUN`` set to 1/true/yes."""
    env = os.environ if environ is None else environ
    return (env.get(AUTO_RUN_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


def _runs_with_tag(instance: DagsterInstance, key: str, value: str) -> list[DagsterRun]:
    return list(instance.get_runs(filters=RunsFilter(tags={key: value})))


def evaluate_automation(
    instance: DagsterInstance,
    data_root: str,
    cursor: str | None,
    *,
    auto_run: bool = False,
    chunk: int = 0,
    log: Any = None,
) -> SensorResult:
    """One tick of :data:`cohort_automation_sensor` (callable without a sensor context)."""
    state = AutomationCursor.load(cursor)
    raw_now = raw_fingerprints(data_root)
    raw_changes = changed_files(state.raw, raw_now)
    cohorts = discover_cohorts(data_root)
    known = set(instance.get_dynamic_partitions(cohort_partitions.name))
    new_cohorts = [c for c in cohorts if c not in known]
    partition_requests = [cohort_partitions.build_add_request(new_cohorts)] if new_cohorts else []

    run_requests: list[RunRequest] = []
    for cohort in cohorts:
        spec_now = spec_fingerprints(data_root, cohort)
        fingerprint = cohort_fingerprint(raw_now, spec_now)
        if state.cohorts.get(cohort) == fingerprint:
            continue
        why = "new cohort" if cohort not in state.cohorts else "spec or raw catalogs changed"
        run_requests.append(RunRequest(
            job_name=cohort_job.name, partition_key=cohort,
            tags={COHORT_TAG: cohort, FINGERPRINT_TAG: fingerprint},
        ))
        _log(log, f"cohort {cohort}: {why}; requesting a rebuild ({fingerprint})")
        if state.cohorts.get(cohort) is not None:
            _log_template_impact(log, data_root, cohort, raw_changes)
        state.cohorts[cohort] = fingerprint
        if auto_run:
            state.pending[cohort] = {"fingerprint": fingerprint, "stage": "", "runs": 0}
    for cohort in [c for c in state.cohorts if c not in cohorts]:
        state.cohorts.pop(cohort)  # spec removed: forget it (prune_partitions_job drops its keys)
        state.pending.pop(cohort, None)

    if auto_run:
        for cohort in list(state.pending):
            run_requests += _advance_auto_run(instance, data_root, cohort, state, chunk, log)
    state.raw = raw_now
    return SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests,
                        cursor=state.dump())


def _advance_auto_run(
    instance: DagsterInstance, data_root: str, cohort: str, state: AutomationCursor, chunk: int, log: Any
) -> list[RunRequest]:
    """Launch the next stage of a pending cohort once the previous step has finished."""
    progress = state.pending[cohort]
    fingerprint, stage = progress["fingerprint"], progress["stage"]
    if not stage:
        builds = _runs_with_tag(instance, FINGERPRINT_TAG, fingerprint)
        builds = [r for r in builds if r.tags.get(COHORT_TAG) == cohort and STAGE_TAG not in r.tags]
        if not any(r.is_finished for r in builds):
            return []
        if not any(r.is_success for r in builds):
            _log(log, f"cohort {cohort}: build {fingerprint} failed; not launching its stages")
            state.pending.pop(cohort)
            return []
        problems = _preflight_problems(data_root, cohort)
        if problems:
            _log(log, f"cohort {cohort}: pre-flight failed, not launching its stages (nothing was called):\n"
                 + problems)
            state.pending.pop(cohort)
            return []
        next_stage: Stage | None = STAGES[0]
        progress["allowed"] = _allowed_digest(data_root, cohort, instance)
    else:
        round_number = int(progress.get("round", 1))
        label = f"{cohort}:{fingerprint}:{stage}" + (f":{round_number}" if round_number > 1 else "")
        runs = _runs_with_tag(instance, AUTORUN_TAG, label)
        if len(runs) < progress["runs"] or not all(r.is_finished for r in runs):
            return []
        index = STAGES.index(stage)
        next_stage = STAGES[index + 1] if index + 1 < len(STAGES) else None
    ensure_pool_limit(instance)
    round_number = int(progress.get("round", 1))
    while True:
        while next_stage is not None:
            # Runs of a later round carry its number: the auto-run tag of round 1's stage runs
            # must not count them.
            label = f"{cohort}:{fingerprint}:{next_stage}" + (f":{round_number}" if round_number > 1 else "")
            requests = stage_run_requests(instance, data_root, cohort, next_stage, chunk=chunk,
                                          extra_tags={AUTORUN_TAG: label, FINGERPRINT_TAG: fingerprint,
                                                      ROUND_TAG: str(round_number)})
            if requests:
                state.pending[cohort] = {**progress, "stage": next_stage, "runs": len(requests), "round": round_number}
                _log(log, f"cohort {cohort}: launching {len(requests)} {next_stage} run(s)"
                     + (f" (round {round_number})" if round_number > 1 else ""))
                return requests
            index = STAGES.index(next_stage)
            next_stage = STAGES[index + 1] if index + 1 < len(STAGES) else None
        # Every stage of the round has finished: a gate or adaptive rule may now allow more
        # (the steps skip what it still holds back, so a round re-runs the later stages' ranges).
        allowed = _allowed_digest(data_root, cohort, instance)
        if not allowed or allowed == progress.get("allowed"):
            break
        round_number += 1
        progress = {**progress, "allowed": allowed, "round": round_number}
        next_stage = _round_start(data_root, cohort)
        _log(log, f"cohort {cohort}: its gate, adaptive rule or tournament allows more members; round {round_number}")
    state.pending.pop(cohort)
    _log(log, f"cohort {cohort}: every stage launched for {fingerprint}")
    return []


def _allowed_digest(data_root: str, cohort: str, instance: DagsterInstance | None = None) -> str:
    """A digest of the members the cohort's gate, adaptive rounds and tournament allow now (''
    without them); a new round starts when it changes. Writes ``rounds.json`` as ``daydream
    run`` does; a tournament cohort is re-built first (the verdicts on disk may decide its next
    round) and its new comparisons registered as partitions."""
    import hashlib

    from .adaptive import cohort_selection, has_spending, write_rounds
    from .cohorts import build_cohort, load_membership
    from .cohorts.build import cohort_spec_path
    from .cohorts.spec import load_spec

    spec = load_spec(cohort_spec_path(data_root, cohort))
    if not has_spending(spec) and spec.tournament is None:
        return ""
    if spec.tournament is not None:
        membership = build_cohort(data_root, cohort).membership
        if instance is not None:
            from .orchestration import register_keys

            register_keys(instance, "comparison", [r.gen_id for r in membership.comparisons])
    else:
        membership = load_membership(data_root, cohort)
    allowed_rows = list(membership.all_rows())
    if has_spending(spec):
        selection = cohort_selection(data_root, cohort, membership=membership, spec=spec)
        write_rounds(data_root, cohort, selection, membership)
        allowed_rows = [r for r in allowed_rows if selection.allows(r.gen_id)]
    allowed = sorted(r.gen_id for r in allowed_rows)
    return hashlib.sha256("\n".join(allowed).encode()).hexdigest()[:16]


def _round_start(data_root: str, cohort: str) -> Stage:
    """The first stage a later round can add members to: essays for a gate or adaptive rounds
    (the steps skip what is still held back), comparisons when only a tournament adds rounds
    (the other stages are finished: re-running their ranges would only reuse them)."""
    from .adaptive import has_spending
    from .cohorts.build import cohort_spec_path
    from .cohorts.spec import load_spec

    return STAGES[1] if has_spending(load_spec(cohort_spec_path(data_root, cohort))) else "comparison"


def _preflight_problems(data_root: str, cohort: str) -> str:
    """Pre-flight of a freshly built cohort before its first stage launches ('' when fine)."""
    from .cohorts import read_membership
    from .preflight import cohort_preflight

    return cohort_preflight(data_root, read_membership(data_root, cohort)).render()


def _log_template_impact(log: Any, data_root: str, cohort: str, raw_changes: list[str]) -> None:
    templates = changed_templates(raw_changes)
    if not templates:
        return
    try:
        membership = read_membership(data_root, cohort)
    except (FileNotFoundError, ValueError):
        return  # not built yet: nothing rendered from these templates
    for ref in templates:
        impact = affected_generations(data_root, ref.stage, ref.template_id, membership)
        counts = ", ".join(f"{len(ids)} {s}" for s, ids in impact.items() if ids) or "none"
        _log(log, f"cohort {cohort}: template {ref.stage}/{ref.template_id} changed; affected generations: {counts}"
             f" (rendered from it: {impact[ref.stage][:10]}{' ...' if len(impact[ref.stage]) > 10 else ''})")


def _log(log: Any, message: str) -> None:
    if log is not None:
        log.info(message)


@sensor(
    name="cohort_automation_sensor",
    jobs=AUTOMATION_JOBS,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Adds cohort partitions for new specs; rebuilds a cohort when its spec or the raw "
    "catalogs/templates change (content fingerprints); with DAYDREAMING_AUTO_RUN=1 also runs its stages.",
)
def cohort_automation_sensor(context: SensorEvaluationContext, data_root: DataRootResource) -> SensorResult:
    """Keep cohort assets (and, with auto-run, generations) in step with the files on disk."""
    chunk = int(os.environ.get(RUN_CHUNK_ENV) or 0)
    return evaluate_automation(context.instance, data_root.root, context.cursor,
                               auto_run=auto_run_enabled(), chunk=chunk, log=context.log)


# -- run failures --------------------------------------------------------------------------
def _stage_of_run(run: DagsterRun) -> str | None:
    if run.tags.get(STAGE_TAG):
        return run.tags[STAGE_TAG]
    names = {key.to_user_string() for key in (run.asset_selection or [])}
    stages = {s for s in STAGES if any(n.startswith(f"{s}_") for n in names)}
    return stages.pop() if len(stages) == 1 else None


def report_run_failure(instance: DagsterInstance, data_root: str, run: DagsterRun) -> tuple[dict[str, Any], Any]:
    """Build (and, when it lists generations, write) the failure report of a generation run.

    Returns ``(report, path or None)``; see :func:`.failures.run_failure_report`.
    """
    tags = dict(run.tags)
    stage = _stage_of_run(run)
    if stage:
        tags[STAGE_TAG] = stage
    keys = instance.get_dynamic_partitions(partitions_name(stage)) if stage in STAGES else []  # type: ignore[arg-type]
    report = run_failure_report(GensDataLayer.from_root(data_root), run.run_id, tags, keys)
    path = write_failure_report(data_root, report) if report["generations"] else None
    return report, path


@run_failure_sensor(
    name="generation_failure_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Lists the unfinished generations of a failed run (error, raw_failure.log) in "
    "cohorts/<cohort>/reports/failures_<run_id>.json.",
)
def generation_failure_sensor(context: RunFailureSensorContext, data_root: DataRootResource) -> None:
    """Log and write which generations a failed run left unfinished, and why."""
    report, path = report_run_failure(context.instance, data_root.root, context.dagster_run)
    if not report["generations"]:
        return
    context.log.info(f"run {report['run_id']} ({report['stage']}, cohort {report['cohort_id']}): "
                     f"{report['failed_count']} of {report['generations']} generations unfinished; report: {path}")
    for item in report["failed"][:50]:
        context.log.info(f"  {item['gen_id']} [{item['phase']}] {item['error']} log={item['raw_failure_log']}")


AUTOMATION_SENSORS = [cohort_automation_sensor, generation_failure_sensor]
