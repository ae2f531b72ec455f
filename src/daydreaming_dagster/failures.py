"""Which generations failed, and which to try again: pure functions over the gens store.

Used by the Dagster run-failure sensor (:mod:`.automation`), the raw assets' step retries
(:mod:`.assets.generation`) and ``daydream retry-failed``. Nothing here imports Dagster: a
run is described by its tags (``daydream/cohort``, ``daydream/stage`` and the partition-range
tags) and the ordered keys of its stage's dynamic partitions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .data_layer import GensDataLayer, Paths
from .data_layer._storage import atomic_write_text
from .data_layer.gens_data_layer import FAILED_FLAG
from .stages.status import GenerationState, generation_state
from .types import STAGES, Stage

COHORT_TAG = "daydream/cohort"
ROUND_TAG = "daydream/round"
"""The round of a gated or adaptive cohort a run belongs to (docs/adaptive.md)."""
STAGE_TAG = "daydream/stage"
PROVIDER_TAG = "daydream/provider"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"

TRANSIENT_REASONS = frozenset({"provider_transient"})
"""Failure reasons a later attempt may cure (rate limit, 5xx, timeout after the client's own
retries). Truncation, too few lines, parse errors and non-retryable provider errors are final
until something changes (settings, template, model), so retrying them only pays again."""


def is_transient(reason: str | None) -> bool:
    """True when a failure with this reason may pass on a later attempt."""
    return reason in TRANSIENT_REASONS


@dataclass(frozen=True)
class FailedGeneration:
    """One generation a run left unfinished."""

    stage: Stage
    gen_id: str
    phase: str
    """First phase without a usable artefact: ``prompt``, ``raw`` or ``parsed``."""
    reason: str | None
    """Failure tag from the raw metadata or the failure log (``truncated``, ``provider_transient``...)."""
    error: str
    """What went wrong, for a person."""
    raw_failure_log: str | None
    """Path of ``raw_failure.log`` when the raw phase logged something."""


def run_gen_ids(tags: Mapping[str, str], stage_keys: Sequence[str]) -> list[str]:
    """The gen ids a run covered: its partition-range tags expanded over ``stage_keys`` (the
    stage's dynamic partitions in registration order), or its single partition tag."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        try:
            first, last = stage_keys.index(start), stage_keys.index(end)
        except ValueError:
            return [k for k in (start, end) if k]  # keys pruned since: report what the tags name
        return list(stage_keys[first : last + 1])
    single = tags.get(PARTITION_TAG)
    return [single] if single else []


def _reason_of(layer: GensDataLayer, stage: Stage, gen_id: str, state: GenerationState) -> str | None:
    if state.raw == "failed":
        try:
            return layer.read_raw_metadata(stage, gen_id).get("failure_reason")
        except (FileNotFoundError, ValueError):
            return None
    if state.parsed == "failed":
        return "parse_error"
    if state.raw == "missing" and state.failure_log:
        lines = layer.read_raw_failure_log(stage, gen_id).strip().splitlines()
        for word in (lines[-1].split() if lines else []):
            if word.startswith("reason="):
                return word.removeprefix("reason=")
    return None


def unfinished_generation(layer: GensDataLayer, stage: Stage, gen_id: str) -> FailedGeneration | None:
    """``None`` when ``gen_id`` has a usable parsed output, else what is missing and why."""
    state = generation_state(layer, stage, gen_id)
    if state.parsed == "ok":
        return None
    if not state.prompt:
        phase = "prompt"
    elif state.raw != "ok":
        phase = "raw"
    else:
        phase = "parsed"
    error = state.error or f"no {phase} output (the {phase} phase did not complete; see the run's logs)"
    return FailedGeneration(stage, gen_id, phase, _reason_of(layer, stage, gen_id, state), error, state.failure_log)


def failed_generations(layer: GensDataLayer, stage: Stage, gen_ids: Sequence[str]) -> list[FailedGeneration]:
    """Every generation among ``gen_ids`` without a usable parsed output, in the given order."""
    found = (unfinished_generation(layer, stage, g) for g in gen_ids)
    return [f for f in found if f is not None]


def judged_in_run(layer: GensDataLayer, stage: Stage, gen_ids: Sequence[str], run_id: str) -> dict[str, str]:
    """Gen ids whose raw output this run already rejected for good (truncated, too few lines),
    mapped to the reason: a step retry must not pay for them again."""
    judged: dict[str, str] = {}
    for gen_id in gen_ids:
        try:
            meta = layer.read_raw_metadata(stage, gen_id)
        except (FileNotFoundError, ValueError):
            continue
        reason = meta.get("failure_reason")
        if meta.get(FAILED_FLAG) and meta.get("run_id") == run_id and not is_transient(reason):
            judged[gen_id] = str(reason)
    return judged


def run_failure_report(
    layer: GensDataLayer, run_id: str, tags: Mapping[str, str], stage_keys: Sequence[str]
) -> dict[str, Any]:
    """JSON-ready summary of a failed run: its cohort, stage, gen ids and every unfinished one
    with its error and ``raw_failure.log`` path. A run without a ``daydream/stage`` tag (not a
    generation run) yields an empty ``failed`` list."""
    stage = tags.get(STAGE_TAG)
    gen_ids = run_gen_ids(tags, stage_keys) if stage in STAGES else []
    failed = failed_generations(layer, stage, gen_ids) if gen_ids else []  # type: ignore[arg-type]
    return {
        "run_id": run_id,
        "cohort_id": tags.get(COHORT_TAG),
        "stage": stage,
        "range": [tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)],
        "generations": len(gen_ids),
        "failed_count": len(failed),
        "failed": [asdict(f) for f in failed],
    }


def failure_report_path(data_root: str | Path, cohort_id: str | None, run_id: str) -> Path:
    """``cohorts/<cohort>/reports/failures_<run_id>.json`` (``results/failures/…`` without a cohort)."""
    paths = Paths.from_str(str(data_root))
    folder = paths.cohort_reports_dir(cohort_id) if cohort_id else paths.results_dir / "failures"
    return folder / f"failures_{run_id}.json"


def write_failure_report(data_root: str | Path, report: Mapping[str, Any]) -> Path:
    """Write ``report`` (from :func:`run_failure_report`) atomically; return its path."""
    path = failure_report_path(data_root, report.get("cohort_id"), str(report["run_id"]))
    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return path


def retry_targets(
    layer: GensDataLayer,
    membership: Mapping[Stage, Sequence[str]],
    stages: Sequence[Stage] = STAGES,
) -> dict[Stage, list[str]]:
    """What ``retry-failed`` re-runs, per stage in pipeline order: the generations that failed
    (an error on record) or were left half-done (a prompt but no parsed output: a killed worker,
    a skipped step), plus the unfinished ones whose parent is being retried (they never ran
    because their parent failed). Finished generations and ones never attempted for other
    reasons are left alone, so nothing finished is paid for again."""
    targets: dict[Stage, list[str]] = {}
    retried: set[str] = set()
    for stage in STAGES:
        chosen: list[str] = []
        for gen_id in membership.get(stage, []):
            state = generation_state(layer, stage, gen_id)
            if state.parsed == "ok":
                continue
            if state.error or state.prompt or _parent_of(layer, stage, gen_id) in retried:
                chosen.append(gen_id)
        if stage in stages:
            targets[stage] = chosen
            retried.update(chosen)
    return targets


def _parent_of(layer: GensDataLayer, stage: Stage, gen_id: str) -> str | None:
    if stage == "draft":
        return None
    try:
        return layer.read_main_metadata(stage, gen_id).get("parent_gen_id")
    except (FileNotFoundError, ValueError):
        return None
