"""What the gens store says about a cohort's generations, phase by phase (no model calls)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data_layer import GensDataLayer
from ..data_layer.claims import Lease
from ..types import STAGES, Stage


@dataclass(frozen=True)
class GenerationState:
    """One generation's phases as found on disk."""

    stage: Stage
    gen_id: str
    prompt: bool
    raw: str
    """``ok``, ``failed`` (rejected output kept) or ``missing``."""
    parsed: str
    """``ok``, ``failed`` or ``missing``."""
    error: str | None = None
    failure_log: str | None = None
    cost_usd: float = 0.0
    claimed_by: str | None = None
    """Who is producing it right now (a live claim: ``run … (pid … on host)``), if anyone."""


@dataclass
class StageStatus:
    stage: Stage
    states: list[GenerationState] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "total": len(self.states),
            "prompt": sum(s.prompt for s in self.states),
            "raw_ok": sum(s.raw == "ok" for s in self.states),
            "raw_failed": sum(s.raw == "failed" for s in self.states),
            "parsed_ok": sum(s.parsed == "ok" for s in self.states),
            "parsed_failed": sum(s.parsed == "failed" for s in self.states),
            "failed": sum(1 for s in self.states if s.error),
        }

    @property
    def failures(self) -> list[GenerationState]:
        return [s for s in self.states if s.error]

    @property
    def cost_usd(self) -> float:
        return round(sum(s.cost_usd for s in self.states), 6)

    @property
    def in_progress(self) -> list[GenerationState]:
        """Generations a live process has claimed (being called now)."""
        return [s for s in self.states if s.claimed_by]


def _read_optional(read: Any, stage: Stage, gen_id: str) -> dict[str, Any] | None:
    try:
        return read(stage, gen_id)
    except (FileNotFoundError, ValueError):
        return None


def generation_state(layer: GensDataLayer, stage: Stage, gen_id: str) -> GenerationState:
    """Inspect one generation directory."""
    raw_meta = _read_optional(layer.read_raw_metadata, stage, gen_id)
    parsed_meta = _read_optional(layer.read_parsed_metadata, stage, gen_id)
    raw_file = layer.raw_path(stage, gen_id).is_file()
    # A failure on record counts even without raw.txt: a configuration problem (template,
    # model, route, missing parent) stops a generation before any output exists.
    if raw_meta and raw_meta.get("failed"):
        raw = "failed"
    else:
        raw = "ok" if raw_file and raw_meta else "missing"
    parsed_file = layer.parsed_path(stage, gen_id).is_file()
    if parsed_meta and parsed_meta.get("failed"):
        parsed = "failed"
    else:
        parsed = "ok" if parsed_file and parsed_meta else "missing"
    error = None
    if raw == "failed":
        error = f"raw: {raw_meta.get('error') or raw_meta.get('failure_reason')}"  # type: ignore[union-attr]
    elif parsed == "failed":
        error = f"parsed: {parsed_meta.get('error')}"  # type: ignore[union-attr]
    log_path = layer.raw_failure_log_path(stage, gen_id)
    failure_log = None
    if log_path.is_file():
        failure_log = str(log_path)
        if error is None and raw == "missing":
            last = layer.read_raw_failure_log(stage, gen_id).strip().splitlines()
            error = f"raw: {last[-1]}" if last else None
    cost = float((raw_meta or {}).get("cost_usd") or 0.0)
    return GenerationState(stage, gen_id, layer.prompt_path(stage, gen_id).is_file(), raw, parsed,
                           error, failure_log, cost, _live_claim(layer, stage, gen_id))


def _live_claim(layer: GensDataLayer, stage: Stage, gen_id: str) -> str | None:
    path = layer.paths.claim_path(stage, gen_id)
    try:
        lease = Lease.from_bytes(path.read_bytes())
    except (FileNotFoundError, IsADirectoryError):
        return None
    import time

    return lease.describe() if lease is not None and not lease.stale(time.time()) else None


def cohort_status(layer: GensDataLayer, membership: Mapping[Stage, Sequence[str]]) -> dict[Stage, StageStatus]:
    """Per-stage status of every member of a cohort."""
    return {
        stage: StageStatus(stage, [generation_state(layer, stage, g) for g in membership.get(stage, [])])
        for stage in STAGES
    }
