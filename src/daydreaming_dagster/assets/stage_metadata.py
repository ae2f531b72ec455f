"""The one builder of Dagster metadata for generation assets (seed 002).

A single-generation step shows that generation's metadata JSON, file paths, ``reused``,
tokens and duration; a range step shows totals and the failures, keeping the event log small
when one run covers thousands of partitions.
"""

from __future__ import annotations

from typing import Any

from dagster import MetadataValue

from ..data_layer import GensDataLayer
from ..stages.batch import BatchReport
from ..types import Phase, Stage

_MAX_LISTED_FAILURES = 50


def _phase_path(layer: GensDataLayer, stage: Stage, phase: Phase, gen_id: str) -> str:
    return str({"prompt": layer.prompt_path, "raw": layer.raw_path, "parsed": layer.parsed_path}[phase](stage, gen_id))


def failure_table(layer: GensDataLayer, report: BatchReport) -> list[dict[str, Any]]:
    """Failed generations with reason, error and the path of their failure log."""
    rows = []
    for status in report.failures[:_MAX_LISTED_FAILURES]:
        rows.append({
            "gen_id": status.gen_id,
            "reason": status.reason,
            "error": status.error,
            "raw_failure_log": str(layer.raw_failure_log_path(report.stage, status.gen_id)),
        })
    return rows


def build_stage_metadata(layer: GensDataLayer, report: BatchReport) -> dict[str, Any]:
    """Dagster metadata for one phase step over its partitions."""
    summary = report.summary()
    metadata: dict[str, Any] = {
        "generations": summary["total"],
        "done": summary["done"],
        "reused_count": summary["reused"],
        "failed": summary["failed"],
        "model_calls": summary["model_calls"],
        "total_tokens": summary["total_tokens"],
        "cost_usd": MetadataValue.float(float(summary["cost_usd"])),
        "wall_s": MetadataValue.float(float(summary["wall_s"])),
    }
    if report.failures:
        metadata["failures"] = MetadataValue.json(failure_table(layer, report))
    if len(report.statuses) == 1:
        metadata.update(_single_generation_metadata(layer, report))
    return metadata


def _single_generation_metadata(layer: GensDataLayer, report: BatchReport) -> dict[str, Any]:
    status = report.statuses[0]
    stage, phase, gen_id = report.stage, report.phase, status.gen_id
    metadata: dict[str, Any] = {
        "gen_id": gen_id,
        "reused": status.status == "reused",
        "path": MetadataValue.path(_phase_path(layer, stage, phase, gen_id)),
        "generation_dir": MetadataValue.path(str(layer.generation_dir(stage, gen_id))),
    }
    if phase == "raw":
        metadata["raw_metadata_path"] = MetadataValue.path(str(layer.raw_metadata_path(stage, gen_id)))
    if phase == "parsed":
        metadata["parsed_metadata_path"] = MetadataValue.path(str(layer.parsed_metadata_path(stage, gen_id)))
    info = status.metadata or {}
    if info:
        metadata[f"{phase}_metadata"] = MetadataValue.json(info)
        usage = info.get("usage") or {}
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if usage.get(key) is not None:
                metadata[key] = int(usage[key])
        if info.get("duration_s") is not None:
            metadata["duration_s"] = MetadataValue.float(float(info["duration_s"]))
        if info.get("finish_reason"):
            metadata["finish_reason"] = str(info["finish_reason"])
        if info.get("score") is not None:
            metadata["score"] = MetadataValue.float(float(info["score"]))
    return metadata
