"""The nine generation assets ``{draft,essay,evaluation}_{prompt,raw,parsed}``.

Each asset is thin: it reads its partition keys (one gen id, or a whole contiguous range under
``BackfillPolicy.single_run()``), calls one batch function from :mod:`stages.batch`, and emits
metadata. Cross-stage reads go through ``parent_gen_id`` and the data layer, never through
cross-partition IO-manager loads (seed 003). A step persists every generation it can, then
fails with the list of failed gen ids if any failed.

Failure handling in Dagster terms: the raw assets carry a :class:`~dagster.RetryPolicy` with
exponential backoff (on top of the model client's own per-call retries). A raw step that failed
only because of transient provider errors (``provider_transient``: rate limits, 5xx, timeouts)
raises a retryable :class:`~dagster.Failure`; any other failure (truncated, too few lines,
parse errors, a non-retryable provider error) raises ``Failure(allow_retries=False)``. A retried
step skips the generations an earlier attempt of the same run already rejected for good, so
it pays only for the transient ones again. The raw assets share the concurrency pool
``DAYDREAMING_LLM_POOL`` (default ``llm``) so an instance can cap model-calling steps across
runs (deploy/dagster.yaml).
"""

import os
import warnings
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from ..adaptive import withheld_members
from ..data_layer import GensDataLayer
from ..failures import COHORT_TAG, is_transient, judged_in_run
from ..partitions import STAGE_PARTITIONS
from ..preflight import PREFLIGHT_METADATA_KEY, PREFLIGHT_PASSED, PREFLIGHT_TAG, cohort_preflight
from ..resources import DataRootResource, LLMResource, StageSettingsResource
from ..stages.batch import (
    BatchReport,
    GenerationStatus,
    run_parsed_batch,
    run_prompt_batch,
    run_raw_batch,
)
from ..stages.context import StageContext
from ..stages.pipeline import PIPELINE_TAG, ProducerBoard, producer_board
from ..types import STAGES, Stage
from .stage_metadata import build_stage_metadata, failure_table

SCORE_RANGE = (0.0, 10.0)
LLM_POOL_ENV = "DAYDREAMING_LLM_POOL"
STEP_RETRIES_ENV = "DAYDREAMING_STEP_RETRIES"
STEP_RETRY_DELAY_ENV = "DAYDREAMING_STEP_RETRY_DELAY"


def raw_step_retry_policy(max_retries: int | None = None, delay_s: float | None = None) -> RetryPolicy:
    """Step-level retries of the raw assets: exponential backoff with jitter, for transient
    provider failures only (non-transient failures raise ``allow_retries=False``).

    Defaults: ``$DAYDREAMING_STEP_RETRIES`` (3) retries, first after ``$DAYDREAMING_STEP_RETRY_DELAY``
    (30) seconds, then 60, 120 (± jitter). The client already retried each call
    ``max_attempts`` times; these retries wait out longer outages (a provider down for minutes).
    """
    retries = int(os.environ.get(STEP_RETRIES_ENV, "3")) if max_retries is None else max_retries
    delay = float(os.environ.get(STEP_RETRY_DELAY_ENV, "30")) if delay_s is None else delay_s
    return RetryPolicy(max_retries=retries, delay=delay, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def stage_group(stage: Stage) -> str:
    return f"generation_{stage}"


def _raise_on_failures(context: AssetExecutionContext, layer: GensDataLayer, report: BatchReport) -> None:
    """Everything is persisted by now; fail the step so Dagster shows which generations failed.

    Only a raw step with at least one transient provider failure may be retried by the step's
    retry policy; everything else fails for good (retrying would pay for the same answer).
    """
    if not report.failures:
        _raise_if_stopped(report)
        return
    failed = report.failures
    retryable = report.phase == "raw" and any(is_transient(s.reason) for s in failed)
    preview = "; ".join(f"{s.gen_id}: {s.error}" for s in failed[:5])
    more = f" (+{len(failed) - 5} more)" if len(failed) > 5 else ""
    raise Failure(
        description=f"{len(failed)} of {len(report.statuses)} {report.stage} generations failed in the "
        f"{report.phase} phase: {preview}{more}",
        metadata={
            **build_stage_metadata(layer, report),
            "failed_gen_ids": MetadataValue.json([s.gen_id for s in failed]),
            "failures": MetadataValue.json(failure_table(layer, report)),
            "retryable": retryable,
        },
        allow_retries=retryable,
    )


def _raise_if_stopped(report: BatchReport) -> None:
    """A stop request (Ctrl-C) left generations unrun: the step must not report them as
    materialised. Nothing is lost; a re-run picks them up and reuses the rest."""
    skipped = report.count("skipped")
    if skipped:
        raise Failure(
            description=f"stopped on request before {skipped} of {len(report.statuses)} {report.stage} "
            f"generations ran the {report.phase} phase; re-run to resume",
            metadata={"skipped": skipped, "done": report.count("done"), "reused_count": report.count("reused")},
            allow_retries=False,
        )


def _preflight_or_fail(
    ctx: StageContext, stage: Stage, keys: list[str], stage_settings: StageSettingsResource, llm: LLMResource
) -> None:
    """Pre-flight for the generations of this run (the first step of every generation run):
    any problem fails the run before a prompt is written or a model called. Runs launched by
    ``daydream run``/``launch`` checked the whole cohort already and carry :data:`PREFLIGHT_TAG`."""
    report = cohort_preflight(ctx.data_root, {stage: keys}, settings={stage: stage_settings.for_stage(stage)},
                              llm_config=llm.llm_config(), check_routes=llm.checks_routes())
    if report.problems:
        raise Failure(
            description=f"pre-flight found {len(report.problems)} problem(s); nothing was called:\n"
            + report.render(),
            metadata={PREFLIGHT_METADATA_KEY: MetadataValue.json([p.render() for p in report.problems])},
            allow_retries=False,
        )


def _context_for(data_root: DataRootResource) -> StageContext:
    return StageContext(data_root.layer())


def _callable_keys(context: AssetExecutionContext, data_root: DataRootResource, stage: Stage) -> list[str]:
    """The run's partition keys minus the members its cohort's gate or adaptive rounds hold back
    (a run tagged with a cohort never calls those, whoever launched it; docs/adaptive.md)."""
    keys = list(context.partition_keys)
    cohort = context.run.tags.get(COHORT_TAG)
    if not cohort or stage == "draft":  # drafts are never held back
        return keys
    withheld = withheld_members(data_root.root, cohort)
    skipped = [k for k in keys if k in withheld]
    if skipped:
        context.log.info(f"{len(skipped)} {stage} member(s) of cohort {cohort} held back by its gate or adaptive "
                         "rounds: skipped (not called)")
    return [k for k in keys if k not in withheld]


def build_stage_assets(
    stage: Stage, *, retry_policy: RetryPolicy | None = None, pool: str | None = None
) -> list[AssetsDefinition]:
    """The prompt, raw and parsed assets of one stage.

    ``retry_policy`` (default :func:`raw_step_retry_policy`) and ``pool`` (default
    ``$DAYDREAMING_LLM_POOL`` or ``llm``) apply to the raw asset, the only one calling models.
    """
    # ``backfill_policy`` is a beta parameter of ``@asset`` in Dagster 1.13. We rely on it on
    # purpose (one run per key range), so its warning, printed on every import of the
    # definitions (``dagster dev -m``), would only alarm users who can do nothing about it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BetaWarning, message=r".*backfill_policy.*")
        return _stage_assets(stage, retry_policy=retry_policy, pool=pool)


def _stage_assets(stage: Stage, *, retry_policy: RetryPolicy | None, pool: str | None) -> list[AssetsDefinition]:
    partitions_def = STAGE_PARTITIONS[stage]
    group = stage_group(stage)
    policy = BackfillPolicy.single_run()
    prompt_name, raw_name, parsed_name = f"{stage}_prompt", f"{stage}_raw", f"{stage}_parsed"

    @asset(
        name=prompt_name,
        partitions_def=partitions_def,
        group_name=group,
        io_manager_key="prompt_io_manager",
        backfill_policy=policy,
        kinds={"python"},
        description=f"Rendered {stage} prompts, gens/{stage}/<gen_id>/prompt.txt.",
    )
    def prompt_asset(
        context: AssetExecutionContext,
        data_root: DataRootResource,
        stage_settings: StageSettingsResource,
        llm: LLMResource,
    ) -> dict[str, str]:
        ctx = _context_for(data_root)
        keys = _callable_keys(context, data_root, stage)
        if context.run.tags.get(PREFLIGHT_TAG) != PREFLIGHT_PASSED:
            _preflight_or_fail(ctx, stage, keys, stage_settings, llm)
        report, prompts = run_prompt_batch(ctx, stage, keys, stage_settings.for_stage(stage), run_id=context.run_id,
                                           board=producer_board(context.run.tags.get(PIPELINE_TAG)))
        context.add_output_metadata(build_stage_metadata(ctx.layer, report))
        _raise_on_failures(context, ctx.layer, report)
        return prompts

    @asset(
        name=raw_name,
        partitions_def=partitions_def,
        group_name=group,
        ins={"prompts": AssetIn(prompt_name)},
        backfill_policy=policy,
        retry_policy=retry_policy or raw_step_retry_policy(),
        pool=pool or os.environ.get(LLM_POOL_ENV) or "llm",
        kinds={"python"},
        description=f"Raw {stage} model outputs, gens/{stage}/<gen_id>/raw.txt (+ raw_metadata.json).",
    )
    def raw_asset(
        context: AssetExecutionContext,
        prompts: dict[str, str],
        data_root: DataRootResource,
        stage_settings: StageSettingsResource,
        llm: LLMResource,
    ) -> MaterializeResult:
        ctx = _context_for(data_root)
        keys = _callable_keys(context, data_root, stage)
        judged = judged_in_run(ctx.layer, stage, keys, context.run_id) if context.retry_number else {}
        todo = [k for k in keys if k not in judged]
        report = _run_raw(ctx, stage, todo, stage_settings, llm, prompts, context.run_id,
                          producer_board(context.run.tags.get(PIPELINE_TAG)))
        report.statuses += [
            GenerationStatus(gen_id=g, status="failed", reason=reason,
                             error=f"rejected ({reason}) by an earlier attempt of this run; not retried")
            for g, reason in judged.items()
        ]
        _raise_on_failures(context, ctx.layer, report)
        return MaterializeResult(metadata=build_stage_metadata(ctx.layer, report))

    check_specs = [AssetCheckSpec("parsed_text_present", asset=parsed_name)]
    if stage == "evaluation":
        check_specs.append(AssetCheckSpec("score_in_range", asset=parsed_name))

    @asset(
        name=parsed_name,
        partitions_def=partitions_def,
        group_name=group,
        deps=[raw_name],
        backfill_policy=policy,
        check_specs=check_specs,
        kinds={"python"},
        description=f"Parsed {stage} outputs, gens/{stage}/<gen_id>/parsed.txt (+ parsed_metadata.json).",
    )
    def parsed_asset(
        context: AssetExecutionContext, data_root: DataRootResource, stage_settings: StageSettingsResource
    ) -> MaterializeResult:
        ctx = _context_for(data_root)
        keys = _callable_keys(context, data_root, stage)
        report = run_parsed_batch(ctx, stage, keys, stage_settings.for_stage(stage), run_id=context.run_id)
        _raise_on_failures(context, ctx.layer, report)
        return MaterializeResult(
            metadata=build_stage_metadata(ctx.layer, report),
            check_results=_parsed_checks(ctx.layer, stage, report),
        )

    return [prompt_asset, raw_asset, parsed_asset]


def _run_raw(
    ctx: StageContext,
    stage: Stage,
    keys: list[str],
    stage_settings: StageSettingsResource,
    llm: LLMResource,
    prompts: dict[str, str],
    run_id: str,
    board: ProducerBoard | None = None,
) -> BatchReport:
    import asyncio

    async def run() -> BatchReport:
        client = llm.client(ctx.models(), data_root=ctx.data_root)
        try:
            return await run_raw_batch(
                ctx, stage, keys, stage_settings.for_stage(stage), client,
                concurrency=llm.effective_concurrency(), run_id=run_id, prompts=prompts,
                slots=llm.call_slots(), board=board,
            )
        finally:
            await client.aclose()

    return asyncio.run(run())


def _parsed_checks(layer: GensDataLayer, stage: Stage, report: BatchReport) -> list[AssetCheckResult]:
    missing = [s.gen_id for s in report.statuses if not layer.parsed_path(stage, s.gen_id).is_file()]
    checks = [
        AssetCheckResult(
            check_name="parsed_text_present",
            passed=not missing,
            severity=AssetCheckSeverity.ERROR,
            metadata={"checked": len(report.statuses), "missing": MetadataValue.json(missing[:50])},
        )
    ]
    if stage == "evaluation":
        low, high = SCORE_RANGE
        bad: list[dict[str, Any]] = []
        for status in report.statuses:
            score = (status.metadata or {}).get("score")
            if score is None or not (low <= float(score) <= high):
                bad.append({"gen_id": status.gen_id, "score": score})
        checks.append(
            AssetCheckResult(
                check_name="score_in_range",
                passed=not bad,
                severity=AssetCheckSeverity.ERROR,
                metadata={"range": f"{low:g}-{high:g}", "out_of_range": MetadataValue.json(bad[:50])},
            )
        )
    return checks


def build_generation_assets(
    *, retry_policy: RetryPolicy | None = None, pool: str | None = None
) -> list[AssetsDefinition]:
    """The nine generation assets (tests pass a fast ``retry_policy``)."""
    return [a for stage in STAGES for a in build_stage_assets(stage, retry_policy=retry_policy, pool=pool)]


GENERATION_ASSETS: list[AssetsDefinition] = build_generation_assets()
