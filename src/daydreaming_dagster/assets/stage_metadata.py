"""The one builder of Dagster metadata for generation assets (seed 002).

A single-generation step shows that generation's metadata JSON, file paths, ``reused``,
tokens and duration; a range step shows one line of totals (``batch``) and the failures,
keeping the event log small when one run covers thousands of partitions (Dagster writes the
step's metadata into every partition's event).
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
    if len(report.statuses) != 1:
        # Dagster copies a range step's metadata onto every partition's materialisation event:
        # one line of totals serialises in a fraction of the time of eight typed entries.
        metadata: dict[str, Any] = {"batch": batch_summary(summary)}
        if report.failures:
            metadata["failures"] = MetadataValue.json(failure_table(layer, report))
        return metadata
    metadata = {
        "generations": summary["total"],
        "done": summary["done"],
        "reused_count": summary["reused"],
        "claimed_by_another_run": summary["claimed"],
        "failed": summary["failed"],
        "model_calls": summary["model_calls"],
        "total_tokens": summary["total_tokens"],
        "cost_usd": MetadataValue.float(float(summary["cost_usd"])),
        "wall_s": MetadataValue.float(float(summary["wall_s"])),
    }
    if report.failures:
        metadata["failures"] = MetadataValue.json(failure_table(layer, report))
    metadata.update(_single_generation_metadata(layer, report))
    return metadata


def batch_summary(summary: dict[str, Any]) -> str:
    """One line of a range step's totals (:meth:`BatchReport.summary`)."""
    others = "".join(f"{summary[key]} {label}, " for key, label in
                     (("claimed", "claimed by another run"), ("deferred", "deferred")) if summary.get(key))
    return (
        f"{summary['stage']} {summary['phase']}: {summary['total']} generations, {summary['done']} done, "
        f"{summary['reused']} reused, {others}{summary['failed']} failed, {summary['skipped']} skipped; "
        f"{summary['model_calls']} model calls, ${summary['cost_usd']:.4f}, {summary['total_tokens']} tokens; "
        f"{summary['wall_s']:.1f} s"
    )


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
