"""Read a cohort's generations from the gens store once, for every results table (no Dagster).

A cohort is known by ``cohorts/<id>/membership.csv`` (``stage,gen_id``); each member's
``metadata.json``, ``raw_metadata.json`` and ``parsed_metadata.json`` are read exactly once into
a :class:`GenerationRecord`. Parents that are not members (an evaluation of an essay built by
another cohort) are read on demand and cached, so lineage stays complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl

from ..cohorts import read_membership
from ..data_layer import GensDataLayer, Paths, _storage
from ..errors import DaydreamError
from ..ids import is_valid_gen_id
from ..types import DESIGN_STAGES, STAGES, Stage, parent_stage

__all__ = [
    "GENERATION_SCHEMA",
    "CohortNotFoundError",
    "CohortRecords",
    "GenerationRecord",
    "Status",
    "generations_table",
    "load_cohort_records",
    "read_cohort_members",
    "stage_summary",
]

Status = Literal["ok", "parse_error", "raw_failed", "missing", "gated", "unselected", "held"]
"""``ok``: parsed output exists; ``parse_error``: raw kept but the parser found nothing;
``raw_failed``: raw output rejected (truncated, too short, provider error...);
``missing``: not generated yet (or its directory/metadata is gone). For a cohort with a gate or
adaptive evaluation (docs/adaptive.md), a member not generated on purpose is ``gated`` (a
gate's screen decided against it), ``unselected`` (adaptive evaluation ended without it) or
``held`` (waits for a later round), as the last run recorded in ``rounds.json``."""

# Reading many small JSON files is I/O bound (and slow per request on object storage):
# a few threads overlap the waits without changing results.
_READ_WORKERS = 8


class CohortNotFoundError(DaydreamError, FileNotFoundError):
    """The cohort has no directory, no ``membership.csv`` or no members: nothing to report."""


@dataclass(frozen=True)
class GenerationRecord:
    """Everything the results layer reads about one generation (each file read once)."""

    stage: Stage
    gen_id: str
    metadata: Mapping[str, Any] | None
    """``metadata.json`` (``None`` when missing or unreadable)."""
    raw_metadata: Mapping[str, Any] | None
    """``raw_metadata.json`` (``None`` when the raw phase has not run)."""
    parsed_metadata: Mapping[str, Any] | None
    """``parsed_metadata.json`` (``None`` when the parsed phase has not run)."""
    read_error: str | None = None
    """Why a metadata file could not be read (malformed JSON...), if one could not."""
    withheld: tuple[str, str] | None = None
    """``(state, reason)`` when the cohort's gate or adaptive rounds held this member back."""

    @property
    def exists(self) -> bool:
        return self.metadata is not None

    def _meta(self, key: str) -> Any:
        value = (self.metadata or {}).get(key)
        return None if value in ("", None) else value

    @property
    def template_id(self) -> str | None:
        value = self._meta("template_id")
        return None if value is None else str(value)

    @property
    def mode(self) -> str | None:
        value = self._meta("mode")
        return None if value is None else str(value)

    @property
    def llm_model_id(self) -> str | None:
        """The model, or ``None`` in copy mode (a copy calls no model)."""
        if self.mode == "copy":
            return None
        value = self._meta("llm_model_id")
        return None if value is None else str(value)

    @property
    def parent_gen_id(self) -> str | None:
        value = self._meta("parent_gen_id")
        return None if value is None else str(value)

    @property
    def combo_id(self) -> str | None:
        value = self._meta("combo_id")
        return None if value is None else str(value)

    @property
    def replicate(self) -> int | None:
        value = self._meta("replicate")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def status(self) -> Status:
        """How far this generation got (see :data:`Status`)."""
        parsed = self.parsed_metadata
        if parsed is not None:
            if parsed.get("failed") or parsed.get("success") is False:
                return "parse_error"
            return "ok"
        raw = self.raw_metadata
        if raw is not None and raw.get("failed"):
            return "raw_failed"
        if self.withheld is not None and raw is None:
            return self.withheld[0]  # type: ignore[return-value]
        return "missing"

    @property
    def error(self) -> str | None:
        """The recorded error of a failed phase (or why files could not be read)."""
        status = self.status
        if status == "parse_error":
            return _text((self.parsed_metadata or {}).get("error")) or "parse failed"
        if status == "raw_failed":
            raw = self.raw_metadata or {}
            reason, message = _text(raw.get("failure_reason")), _text(raw.get("error"))
            return ": ".join(p for p in (reason, message) if p) or "raw output rejected"
        if self.read_error:
            return self.read_error
        if status == "missing" and self.metadata is None:
            return "generation directory or metadata.json is missing"
        return None

    @property
    def score(self) -> float | None:
        """The parsed score (evaluations that parsed), else ``None``."""
        if self.status != "ok":
            return None
        value = (self.parsed_metadata or {}).get("score")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def scale(self) -> str | None:
        value = (self.parsed_metadata or {}).get("scale") if self.status == "ok" else None
        return None if value is None else str(value)

    @property
    def cost_usd(self) -> float | None:
        """Cost of the raw call as recorded (also for rejected outputs: they were paid for)."""
        value = (self.raw_metadata or {}).get("cost_usd")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def tokens(self, kind: str) -> int | None:
        """``prompt_tokens``, ``completion_tokens`` or ``total_tokens`` of the raw call."""
        usage = (self.raw_metadata or {}).get("usage") or {}
        value = usage.get(kind) if isinstance(usage, Mapping) else None
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass
class CohortRecords:
    """A cohort's members by stage (membership order) and every record read, by gen id."""

    data_root: Path
    cohort_id: str
    members: dict[Stage, list[str]]
    records: dict[tuple[Stage, str], GenerationRecord] = field(default_factory=dict)

    @property
    def layer(self) -> GensDataLayer:
        return GensDataLayer(self.data_root)

    def record(self, stage: Stage, gen_id: str) -> GenerationRecord:
        """The record of ``stage/gen_id``, read now (and cached) when not yet loaded."""
        key = (stage, gen_id)
        if key not in self.records:
            self.records[key] = _read_record(self.layer, stage, gen_id)
        return self.records[key]

    def member_records(self, stage: Stage) -> list[GenerationRecord]:
        return [self.record(stage, gen_id) for gen_id in self.members.get(stage, [])]

    def parent(self, record: GenerationRecord) -> GenerationRecord | None:
        """The parent generation's record, or ``None`` (drafts, unknown parent)."""
        stage = parent_stage(record.stage)
        parent_id = record.parent_gen_id
        if stage is None or parent_id is None or not is_valid_gen_id(parent_id):
            return None
        return self.record(stage, parent_id)


def read_cohort_members(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> dict[Stage, list[str]]:
    """``{stage: [gen_id, ...]}`` from ``cohorts/<cohort_id>/membership.csv`` (file order, no duplicates).

    Raises :class:`CohortNotFoundError` when the cohort directory or its membership file is
    missing or lists nobody, and :class:`~daydreaming_dagster.errors.MembershipError` for a
    malformed file (read by :func:`daydreaming_dagster.cohorts.read_membership`).
    """
    paths = Paths.from_str(data_root)
    if not is_valid_gen_id(cohort_id):
        raise CohortNotFoundError(
            f"invalid cohort id {cohort_id!r}: use ASCII letters, digits, '_' or '-' (the name of a directory under {paths.cohorts_dir})"
        )
    cohort_dir = paths.cohort_dir(cohort_id)
    if not cohort_dir.is_dir():
        known = sorted(p.name for p in paths.cohorts_dir.iterdir() if p.is_dir()) if paths.cohorts_dir.is_dir() else []
        raise CohortNotFoundError(
            f"cohort {cohort_id!r} not found: no directory {cohort_dir}; "
            f"known cohorts: {', '.join(known) or '(none)'}; build the cohort from its spec first"
        )
    membership = paths.cohort_membership_path(cohort_id)
    if not membership.is_file():
        raise CohortNotFoundError(
            f"cohort {cohort_id!r} has no membership file {membership}; build the cohort (compile its spec) first"
        )
    members = read_membership(data_root, cohort_id)
    if not any(members.values()):
        raise CohortNotFoundError(f"cohort {cohort_id!r}: {membership} lists no generations; check the cohort spec")
    return members


def _read_optional_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return _storage.read_json_object(path), None
    except FileNotFoundError:
        return None, None
    except ValueError as exc:  # malformed: report it instead of failing the whole cohort
        return None, str(exc)


def _read_record(layer: GensDataLayer, stage: Stage, gen_id: str) -> GenerationRecord:
    metadata, error_main = _read_optional_json(layer.main_metadata_path(stage, gen_id))
    raw, error_raw = _read_optional_json(layer.raw_metadata_path(stage, gen_id))
    parsed, error_parsed = _read_optional_json(layer.parsed_metadata_path(stage, gen_id))
    errors = [e for e in (error_main, error_raw, error_parsed) if e]
    return GenerationRecord(stage, gen_id, metadata, raw, parsed, read_error="; ".join(errors) or None)


def _read_many(layer: GensDataLayer, keys: Iterable[tuple[Stage, str]]) -> dict[tuple[Stage, str], GenerationRecord]:
    keys = list(keys)
    if len(keys) < 2 * _READ_WORKERS:
        return {key: _read_record(layer, *key) for key in keys}
    with ThreadPoolExecutor(max_workers=_READ_WORKERS) as pool:
        records = pool.map(lambda key: _read_record(layer, *key), keys)
        return dict(zip(keys, records, strict=True))


def load_cohort_records(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> CohortRecords:
    """Read every member generation of a cohort (and any non-member parents) once.

    Raises :class:`CohortNotFoundError` / :class:`MembershipError` as
    :func:`read_cohort_members` does.
    """
    members = read_cohort_members(data_root, cohort_id)
    root = Paths.from_str(data_root).data_root
    cohort = CohortRecords(data_root=root, cohort_id=cohort_id, members=members)
    layer = cohort.layer
    cohort.records.update(_read_many(layer, ((stage, g) for stage in STAGES for g in members[stage])))
    # Parents outside the membership, stage by stage from the bottom, so grandparents follow.
    for stage in reversed(STAGES):
        wanted = {
            (parent_stage(stage), r.parent_gen_id)
            for r in cohort.member_records(stage)
            if parent_stage(stage) and r.parent_gen_id and is_valid_gen_id(r.parent_gen_id)
        }
        missing = sorted(k for k in wanted if k not in cohort.records)  # type: ignore[misc]
        cohort.records.update(_read_many(layer, missing))  # type: ignore[arg-type]
    for (stage, gen_id), state in _withheld(data_root, cohort_id).items():
        record = cohort.records.get((stage, gen_id))
        if record is not None:
            cohort.records[(stage, gen_id)] = replace(record, withheld=state)
    return cohort


def _withheld(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> dict[tuple[Stage, str], tuple[str, str]]:
    """Members the last run's gate and adaptive rounds held back (``rounds.json``; none without)."""
    path = Paths.from_str(data_root).cohort_rounds_path(cohort_id)
    if not path.is_file():
        return {}
    try:
        record = _storage.read_json_object(path)
    except (ValueError, OSError):
        return {}
    found: dict[tuple[Stage, str], tuple[str, str]] = {}
    for stage, members in (record.get("withheld") or {}).items():
        if stage in STAGES and isinstance(members, dict):
            for gen_id, entry in members.items():
                if isinstance(entry, dict):
                    found[(stage, gen_id)] = (str(entry.get("state")), str(entry.get("reason") or ""))
    return found


GENERATION_SCHEMA: dict[str, pl.DataType] = {
    "stage": pl.String(),
    "gen_id": pl.String(),
    "member": pl.Boolean(),
    "parent_gen_id": pl.String(),
    "combo_id": pl.String(),
    "template_id": pl.String(),
    "mode": pl.String(),
    "llm_model_id": pl.String(),
    "replicate": pl.Int64(),
    "status": pl.String(),
    "error": pl.String(),
    "score": pl.Float64(),
    "scale": pl.String(),
    "cost_usd": pl.Float64(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
    "total_tokens": pl.Int64(),
}


def generations_table(cohort: CohortRecords) -> pl.DataFrame:
    """One row per generation read (members first, in membership order; then outside parents),
    with its status, error, score and raw cost/tokens."""
    member_keys = {(stage, g) for stage in STAGES for g in cohort.members[stage]}
    ordered = [(stage, g) for stage in STAGES for g in cohort.members[stage]]
    ordered += sorted(k for k in cohort.records if k not in member_keys)
    rows = []
    for key in ordered:
        record = cohort.record(*key)
        rows.append({
            "stage": record.stage,
            "gen_id": record.gen_id,
            "member": key in member_keys,
            "parent_gen_id": record.parent_gen_id,
            "combo_id": record.combo_id,
            "template_id": record.template_id,
            "mode": record.mode,
            "llm_model_id": record.llm_model_id,
            "replicate": record.replicate,
            "status": record.status,
            "error": record.error,
            "score": record.score,
            "scale": record.scale,
            "cost_usd": record.cost_usd,
            "prompt_tokens": record.tokens("prompt_tokens"),
            "completion_tokens": record.tokens("completion_tokens"),
            "total_tokens": record.tokens("total_tokens"),
        })
    return pl.DataFrame(rows, schema=GENERATION_SCHEMA)


WITHHELD: tuple[Status, ...] = ("gated", "unselected", "held")
"""Statuses of members a gate or adaptive evaluation held back on purpose (not failures)."""
STATUSES: tuple[Status, ...] = ("ok", "parse_error", "raw_failed", "missing", *WITHHELD)


def stage_summary(generations: pl.DataFrame) -> pl.DataFrame:
    """Per stage (member generations only): ``members``, one count per status, ``cost_usd``
    and token totals from raw metadata (rejected outputs included: they were paid for). A stage
    outside the design (comparisons) is listed only when the cohort has members of it."""
    members = generations.filter(pl.col("member"))
    rows = []
    for stage in STAGES:
        frame = members.filter(pl.col("stage") == stage)
        if stage not in DESIGN_STAGES and frame.height == 0:
            continue
        counts = {status: frame.filter(pl.col("status") == status).height for status in STATUSES}
        rows.append({
            "stage": stage,
            "members": frame.height,
            **counts,
            "cost_usd": float(frame["cost_usd"].sum() or 0.0),
            "prompt_tokens": int(frame["prompt_tokens"].sum() or 0),
            "completion_tokens": int(frame["completion_tokens"].sum() or 0),
            "total_tokens": int(frame["total_tokens"].sum() or 0),
        })
    return pl.DataFrame(rows)
