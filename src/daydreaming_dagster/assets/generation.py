"""The nine generation assets ``{draft,essay,evaluation}_{prompt,raw,parsed}``.

Each asset is thin: it reads its partition keys (one gen id, or a whole contiguous range under
``BackfillPolicy.single_run()``), calls one batch function from :mod:`stages.batch`, and emits
metadata. Cross-stage reads go through ``parent_gen_id`` and the data layer, never through
cross-partition IO-manager loads (seed 003). A step persists every generation it can, then
fails with the list of failed gen ids if any failed.
"""


from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..data_layer import GensDataLayer
from ..partitions import STAGE_PARTITIONS
from ..resources import DataRootResource, LLMResource, StageSettingsResource
from ..stages.batch import BatchReport, run_parsed_batch, run_prompt_batch, run_raw_batch
from ..stages.context import StageContext
from ..types import STAGES, Stage
from .stage_metadata import build_stage_metadata, failure_table

SCORE_RANGE = (0.0, 10.0)


def stage_group(stage: Stage) -> str:
    return f"generation_{stage}"


def _raise_on_failures(context: AssetExecutionContext, layer: GensDataLayer, report: BatchReport) -> None:
    """Everything is persisted by now; fail the step so Dagster shows which generations failed."""
    if not report.failures:
        return
    failed = report.failures
    preview = "; ".join(f"{s.gen_id}: {s.error}" for s in failed[:5])
    more = f" (+{len(failed) - 5} more)" if len(failed) > 5 else ""
    raise Failure(
        description=f"{len(failed)} of {len(report.statuses)} {report.stage} generations failed in the "
        f"{report.phase} phase: {preview}{more}",
        metadata={
            **build_stage_metadata(layer, report),
            "failed_gen_ids": MetadataValue.json([s.gen_id for s in failed]),
            "failures": MetadataValue.json(failure_table(layer, report)),
        },
    )


def _context_for(data_root: DataRootResource) -> StageContext:
    return StageContext(data_root.layer())


def build_stage_assets(stage: Stage) -> list[AssetsDefinition]:
    """The prompt, raw and parsed assets of one stage."""
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
        context: AssetExecutionContext, data_root: DataRootResource, stage_settings: StageSettingsResource
    ) -> dict[str, str]:
        ctx = _context_for(data_root)
        report, prompts = run_prompt_batch(ctx, stage, context.partition_keys, stage_settings.for_stage(stage))
        context.add_output_metadata(build_stage_metadata(ctx.layer, report))
        _raise_on_failures(context, ctx.layer, report)
        return prompts

    @asset(
        name=raw_name,
        partitions_def=partitions_def,
        group_name=group,
        ins={"prompts": AssetIn(prompt_name)},
        backfill_policy=policy,
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
        keys = list(context.partition_keys)
        report = _run_raw(ctx, stage, keys, stage_settings, llm, prompts, context.run_id)
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
        keys = list(context.partition_keys)
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
) -> BatchReport:
    import asyncio

    async def run() -> BatchReport:
        client = llm.client(ctx.models())
        try:
            return await run_raw_batch(
                ctx, stage, keys, stage_settings.for_stage(stage), client,
                concurrency=llm.concurrency, run_id=run_id, prompts=prompts,
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


GENERATION_ASSETS: list[AssetsDefinition] = [a for stage in STAGES for a in build_stage_assets(stage)]
