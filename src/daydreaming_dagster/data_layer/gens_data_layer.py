"""The gens store: one directory per generation holding its prompt, raw and parsed outputs
and their metadata (DESIGN §2, seed 001).

``GensDataLayer`` is the only code that reads or writes generation files, and the one place
that decides whether an artefact is reused (seed 002): ``prompt_exists`` / ``raw_exists`` /
``parsed_exists`` answer ``False`` when ``force`` is set, and a phase that writes a new
artefact clears what was derived from the old one in that generation, so nothing stale is
ever reused.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ids import ensure_gen_id, is_valid_gen_id
from ..types import Stage, ensure_stage, parent_count, parent_stage
from . import _storage
from .paths import (
    PARSED_FILENAME,
    PARSED_METADATA_FILENAME,
    PROMPT_FILENAME,
    RAW_FILENAME,
    RAW_METADATA_FILENAME,
    Paths,
)

__all__ = ["GenerationMetadata", "GensDataLayer", "resolve_generation_metadata"]

# Raw/parsed metadata carry ``"failed": true`` when the phase persisted output but rejected it
# (truncated, too short, unparseable). Such artefacts are kept for debugging but never reused.
FAILED_FLAG = "failed"
# The offline provider's name in raw metadata (kept here: the data layer imports no model code).
_OFFLINE_PROVIDER = "offline"


@dataclass(frozen=True)
class GensDataLayer:
    """Read/write access to ``<data_root>/gens``."""

    data_root: Path
    fsync_writes: bool = True
    """Fsync every file written (default). Batches use :meth:`deferred` and :meth:`flush`."""

    def deferred(self) -> GensDataLayer:
        """This layer writing without a per-file fsync: call :meth:`flush` before relying on
        the files (a batch makes one flush for all its writes)."""
        return dataclasses.replace(self, fsync_writes=False)

    def flush(self) -> None:
        """Make every write so far durable (see :func:`._storage.flush_to_disk`)."""
        _storage.flush_to_disk(self.data_root)

    def _write_text(self, path: Path, text: str) -> None:
        _storage.atomic_write_text(path, text, fsync=self.fsync_writes)

    @classmethod
    def from_root(cls, data_root: str | os.PathLike[str] | Path) -> GensDataLayer:
        """Build a data layer over a local directory or an fsspec URL (``s3://bucket/prefix``)."""
        return cls(Paths.from_str(data_root).data_root)

    @property
    def paths(self) -> Paths:
        return Paths(self.data_root)

    # -- directory utilities ----------------------------------------------------------------
    def generation_dir(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.generation_dir(stage, gen_id)

    def prompt_path(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.prompt_path(stage, gen_id)

    def raw_path(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.raw_path(stage, gen_id)

    def parsed_path(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.parsed_path(stage, gen_id)

    def main_metadata_path(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.metadata_path(stage, gen_id)

    def raw_metadata_path(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.raw_metadata_path(stage, gen_id)

    def parsed_metadata_path(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.parsed_metadata_path(stage, gen_id)

    def raw_failure_log_path(self, stage: Stage, gen_id: str) -> Path:
        return self.paths.raw_failure_log_path(stage, gen_id)

    def reserve_generation(self, stage: Stage, gen_id: str, *, create: bool = True) -> Path:
        """Return the generation directory, creating it when ``create`` is true."""
        path = self.generation_dir(stage, gen_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def exists(self, stage: Stage, gen_id: str) -> bool:
        """True when the generation directory exists."""
        return self.generation_dir(stage, gen_id).is_dir()

    def list_generations(self, stage: Stage) -> list[str]:
        """Sorted gen ids present under ``gens/<stage>`` (stray names are ignored)."""
        stage_dir = self.paths.stage_dir(stage)
        if not stage_dir.is_dir():
            return []
        # On object storage one listing returns the "directories"; a per-entry is_dir() would
        # cost a request each, so only local paths are checked entry by entry.
        local = _storage.is_local(stage_dir)
        return sorted(p.name for p in stage_dir.iterdir() if is_valid_gen_id(p.name) and (not local or p.is_dir()))

    def delete_generation(self, stage: Stage, gen_id: str) -> bool:
        """Remove a generation directory and everything in it; return whether it existed."""
        return _storage.remove_tree(self.generation_dir(stage, gen_id))

    # -- reuse decisions (the single place that answers "can this be reused?") --------------
    # Paths are built before ``force`` is looked at, so a bad stage or gen_id is rejected even
    # when the answer would be "regenerate" anyway.
    def prompt_exists(self, stage: Stage, gen_id: str, *, force: bool = False) -> bool:
        """A prompt is reusable when ``prompt.txt`` exists and ``force`` is off."""
        path = self.prompt_path(stage, gen_id)
        return not force and path.is_file()

    def raw_exists(
        self,
        stage: Stage,
        gen_id: str,
        *,
        force: bool = False,
        served_by: Callable[[str], str | None] | None = None,
    ) -> bool:
        """Raw output is reusable when ``raw.txt`` and its metadata exist, it was not rejected,
        ``force`` is off, and it is not synthetic text standing in for a real model.

        ``served_by`` maps a model id to the provider that would answer it now (``offline`` for
        synthetic text; see :meth:`~..llm.base.LLMProvider.served_by`). An output the offline
        provider produced (``provider: offline`` in ``raw_metadata.json``) for a model that a
        real provider now serves is not reused: synthetic text made with ``--offline`` never
        stands in for a real answer once the real route exists. Without ``served_by`` the
        provider is not compared (status views, which call nothing).
        """
        text_path, metadata_path = self.raw_path(stage, gen_id), self.raw_metadata_path(stage, gen_id)
        if force:
            return False
        metadata = self._usable_metadata(text_path, metadata_path)
        if metadata is None:
            return False
        if served_by is not None and metadata.get("provider") == _OFFLINE_PROVIDER:
            model_id = metadata.get("llm_model_id")
            if model_id and served_by(str(model_id)) not in (None, _OFFLINE_PROVIDER):
                return False
        return True

    def parsed_exists(self, stage: Stage, gen_id: str, *, force: bool = False) -> bool:
        """Parsed output is reusable when ``parsed.txt`` and its metadata exist, parsing
        succeeded, and ``force`` is off."""
        text_path, metadata_path = self.parsed_path(stage, gen_id), self.parsed_metadata_path(stage, gen_id)
        return not force and self._artefact_ok(text_path, metadata_path)

    @classmethod
    def _artefact_ok(cls, text_path: Path, metadata_path: Path) -> bool:
        return cls._usable_metadata(text_path, metadata_path) is not None

    @staticmethod
    def _usable_metadata(text_path: Path, metadata_path: Path) -> dict[str, Any] | None:
        """The artefact's metadata when text and metadata exist and it was not rejected."""
        if not (text_path.is_file() and metadata_path.is_file()):
            return None
        try:
            metadata = _storage.read_json_object(metadata_path)
        except ValueError:
            return None  # unreadable metadata: regenerate rather than trust the artefact
        return None if metadata.get(FAILED_FLAG, False) else metadata

    # -- writes -----------------------------------------------------------------------------
    def write_prompt(self, stage: Stage, gen_id: str, text: str) -> Path:
        """Write ``prompt.txt``; the raw and parsed artefacts derived from an older prompt go."""
        path = self.prompt_path(stage, gen_id)
        self.reserve_generation(stage, gen_id)
        self.clear_raw(stage, gen_id)
        self._write_text(path, text)
        return path

    def store_prompt(self, stage: Stage, gen_id: str, text: str, *, force: bool = False) -> bool:
        """Persist a freshly rendered prompt; return ``True`` when the existing one was reused.

        An identical prompt already on disk is kept (with everything derived from it) unless
        ``force`` is set; a different one replaces it and clears raw and parsed outputs, so a
        template edit invalidates exactly the generations whose prompt it changes.
        """
        if self.prompt_matches(stage, gen_id, text, force=force):
            return True
        self.write_prompt(stage, gen_id, text)
        return False

    def prompt_matches(self, stage: Stage, gen_id: str, text: str, *, force: bool = False) -> bool:
        """A stored prompt is reusable when it is identical to ``text`` and ``force`` is off."""
        if not self.prompt_exists(stage, gen_id, force=force):
            return False
        try:
            return self.read_prompt(stage, gen_id) == text
        except FileNotFoundError:  # removed since the check: nothing to reuse
            return False

    def write_raw(self, stage: Stage, gen_id: str, text: str) -> Path:
        """Write ``raw.txt``; the parsed artefacts derived from an older raw output go."""
        path = self.raw_path(stage, gen_id)
        self.reserve_generation(stage, gen_id)
        self.clear_parsed(stage, gen_id)
        self._write_text(path, text)
        return path

    def write_parsed(self, stage: Stage, gen_id: str, text: str) -> Path:
        path = self.parsed_path(stage, gen_id)
        self.reserve_generation(stage, gen_id)
        self._write_text(path, text)
        return path

    def write_main_metadata(self, stage: Stage, gen_id: str, metadata: dict[str, Any]) -> Path:
        return self._write_json(self.main_metadata_path(stage, gen_id), metadata, stage, gen_id)

    def create_main_metadata(self, stage: Stage, gen_id: str, metadata: dict[str, Any]) -> bool:
        """Seed ``metadata.json`` unless it exists; return whether this call created it. Of two
        cohort builds seeding the same generation at once, exactly one writes it (the other
        compares what it finds), so its first cohort stays its ``cohort_id``."""
        path = self.main_metadata_path(stage, gen_id)
        self.reserve_generation(stage, gen_id)
        return _storage.create_exclusive(path, _storage.dump_json(metadata).encode("utf-8"), fsync=self.fsync_writes)

    def write_raw_metadata(self, stage: Stage, gen_id: str, metadata: dict[str, Any]) -> Path:
        return self._write_json(self.raw_metadata_path(stage, gen_id), metadata, stage, gen_id)

    def write_parsed_metadata(self, stage: Stage, gen_id: str, metadata: dict[str, Any]) -> Path:
        return self._write_json(self.parsed_metadata_path(stage, gen_id), metadata, stage, gen_id)

    def _write_json(self, path: Path, metadata: dict[str, Any], stage: Stage, gen_id: str) -> Path:
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata for {path} must be a dict, got {type(metadata).__name__}")
        self.reserve_generation(stage, gen_id)
        self._write_text(path, _storage.dump_json(metadata))
        return path

    def append_raw_failure(self, stage: Stage, gen_id: str, line: str) -> Path:
        """Append one line to ``raw_failure.log`` (a history kept across attempts)."""
        path = self.raw_failure_log_path(stage, gen_id)
        self.reserve_generation(stage, gen_id)
        _storage.append_line(path, line)
        return path

    def record_blocked(
        self, stage: Stage, gen_id: str, *, phase: str, reason: str, error: str, details: dict[str, Any]
    ) -> Path | None:
        """Record that a configuration problem (template, parser, model, missing parent...)
        stopped a generation in ``phase`` before it produced output, so status views, reports
        and ``retry-failed`` see a failure, not a generation that was never attempted.

        ``prompt``/``raw``: ``raw_metadata.json`` gets ``success: false``, ``failed: true``, the
        reason and the error (and ``raw_failure.log`` a line), unless a usable raw output exists
        (paid work is never overwritten; the run still reports the failure). A prompt that can no
        longer be built also loses its stale ``prompt.txt``, so no later step sends it.
        ``parsed``: ``parsed_metadata.json`` gets the failure (parsed text cleared).
        Returns the metadata path written, or ``None`` when nothing was written.
        """
        record = {**details, "stage": stage, "gen_id": gen_id, "phase": phase, "success": False,
                  FAILED_FLAG: True, "failure_reason": reason, "error": error, "reused": False}
        if phase == "parsed":
            self.clear_parsed(stage, gen_id)
            return self.write_parsed_metadata(stage, gen_id, record)
        if self.raw_exists(stage, gen_id):
            return None
        if phase == "prompt":
            self._remove_present(stage, gen_id, (PROMPT_FILENAME,))
        self.clear_parsed(stage, gen_id)
        self.append_raw_failure(stage, gen_id, f"{details.get('finished_at', '-')} run_id="
                                f"{details.get('run_id') or '-'} reason={reason} {error}")
        return self.write_raw_metadata(stage, gen_id, record)

    def clear_raw(self, stage: Stage, gen_id: str) -> None:
        """Remove raw output, raw metadata and everything parsed from them."""
        self._remove_present(stage, gen_id, (RAW_FILENAME, RAW_METADATA_FILENAME, PARSED_FILENAME, PARSED_METADATA_FILENAME))

    def clear_parsed(self, stage: Stage, gen_id: str) -> None:
        """Remove parsed output and parsed metadata."""
        self._remove_present(stage, gen_id, (PARSED_FILENAME, PARSED_METADATA_FILENAME))

    def _remove_present(self, stage: Stage, gen_id: str, names: tuple[str, ...]) -> None:
        directory = self.generation_dir(stage, gen_id)
        if _storage.is_local(directory):
            # One directory listing instead of a failing unlink per absent file: a fresh
            # generation (the common case) has nothing to clear.
            try:
                present = set(os.listdir(directory))
            except FileNotFoundError:
                return
            names = tuple(name for name in names if name in present)
        for name in names:
            _storage.remove_file(directory / name)

    # -- reads ------------------------------------------------------------------------------
    def read_prompt(self, stage: Stage, gen_id: str) -> str:
        return _storage.read_text(self.prompt_path(stage, gen_id))

    def read_raw(self, stage: Stage, gen_id: str) -> str:
        return _storage.read_text(self.raw_path(stage, gen_id))

    def read_parsed(self, stage: Stage, gen_id: str) -> str:
        return _storage.read_text(self.parsed_path(stage, gen_id))

    def read_main_metadata(self, stage: Stage, gen_id: str) -> dict[str, Any]:
        return _storage.read_json_object(self.main_metadata_path(stage, gen_id))

    def read_raw_metadata(self, stage: Stage, gen_id: str) -> dict[str, Any]:
        return _storage.read_json_object(self.raw_metadata_path(stage, gen_id))

    def read_parsed_metadata(self, stage: Stage, gen_id: str) -> dict[str, Any]:
        return _storage.read_json_object(self.parsed_metadata_path(stage, gen_id))

    def read_raw_failure_log(self, stage: Stage, gen_id: str) -> str:
        return _storage.read_text(self.raw_failure_log_path(stage, gen_id))

    def stored_outcome(self, stage: Stage, gen_id: str) -> tuple[str, dict[str, Any] | None]:
        """``("parsed", parsed metadata)`` when a usable parsed output is stored, ``("failed",
        None)`` when the parse or the raw output was rejected, else ``("pending", None)``: what
        later decisions (adaptive rounds, a gate, tournament rounds) may rely on."""
        # Paths first: an invalid stage or id raises here, outside the unreadable-file handling.
        parsed_meta_path, raw_meta_path = self.parsed_metadata_path(stage, gen_id), self.raw_metadata_path(stage, gen_id)
        try:
            parsed = _storage.read_json_object(parsed_meta_path)
        except (FileNotFoundError, ValueError):
            parsed = None
        if parsed is not None:
            if parsed.get(FAILED_FLAG):
                return "failed", None
            if self.parsed_path(stage, gen_id).is_file():
                return "parsed", parsed
        try:
            raw = _storage.read_json_object(raw_meta_path)
        except (FileNotFoundError, ValueError):
            raw = None
        return ("failed" if raw is not None and raw.get(FAILED_FLAG) else "pending"), None


@dataclass(frozen=True)
class GenerationMetadata:
    """The typed view of a generation's ``metadata.json`` (seeded by the cohort build)."""

    stage: Stage
    """Stage of this generation."""
    gen_id: str
    """This generation's id (the directory name and partition key)."""
    template_id: str
    """Template rendered for the prompt (for copy mode, the template that names the mode)."""
    parent_stage: Stage | None
    """Stage of the parent generation (``None`` for drafts)."""
    parent_gen_id: str | None
    """Parent generation id whose parsed text feeds this one."""
    mode: str
    """``llm`` (call a model) or ``copy`` (copy the parent's parsed text)."""
    combo_id: str | None
    """Content combination (drafts, and inherited downstream)."""
    cohort_id: str | None
    """Cohort that first seeded this generation."""
    llm_model_id: str | None = None
    """Model id from ``llm_models.csv`` (``None`` in copy mode)."""
    replicate: int = 1
    """Replicate number (1-based)."""
    parent_gen_ids: tuple[str, ...] = ()
    """Every parent, in order: ``(parent_gen_id,)`` for essays and evaluations, both essays
    (A, B, as shown to the judge) for comparisons, empty for drafts."""
    round: int | None = None
    """The tournament round of a comparison (``None`` for the other stages)."""


def resolve_generation_metadata(layer: GensDataLayer, stage: Stage, gen_id: str) -> GenerationMetadata:
    """Load and check ``metadata.json`` for a generation.

    Raises ``FileNotFoundError`` when it is missing, ``ValueError`` when it is malformed, names
    an unknown mode, lacks a template, or (copy mode, essays, evaluations) lacks its parent.
    """
    stage = ensure_stage(stage)
    ensure_gen_id(gen_id)
    meta = layer.read_main_metadata(stage, gen_id)
    where = f"{stage}/{gen_id} ({layer.main_metadata_path(stage, gen_id)})"

    mode = str(meta.get("mode") or "llm").strip().lower()
    if mode not in ("llm", "copy"):
        raise ValueError(f"metadata of {where}: mode must be 'llm' or 'copy', got {meta.get('mode')!r}")
    template_id = str(meta.get("template_id") or "").strip()
    if not template_id:
        raise ValueError(f"metadata of {where}: template_id is missing")

    raw_parent = meta.get("parent_gen_id")
    parent_gen_id = str(raw_parent).strip() if raw_parent else None
    expected_parent_stage = parent_stage(stage)
    if parent_gen_id and expected_parent_stage is None:
        raise ValueError(f"metadata of {where}: drafts have no parent, got parent_gen_id={parent_gen_id!r}")
    if mode == "copy" and not parent_gen_id:
        raise ValueError(f"copy mode requires parent metadata for {where}")
    if expected_parent_stage is not None and not parent_gen_id:
        raise ValueError(f"metadata of {where}: parent_gen_id is required for {stage} generations")
    if parent_gen_id:
        ensure_gen_id(parent_gen_id)
    parents = _parent_ids(meta, stage, parent_gen_id, where)

    model = meta.get("llm_model_id")
    replicate = _replicate(meta.get("replicate"), where)
    return GenerationMetadata(
        stage=stage,
        gen_id=gen_id,
        template_id=template_id,
        parent_stage=expected_parent_stage if parent_gen_id else None,
        parent_gen_id=parent_gen_id,
        mode=mode,
        combo_id=str(meta.get("combo_id") or "").strip() or None,
        cohort_id=str(meta.get("cohort_id") or "").strip() or None,
        llm_model_id=str(model).strip() if model else None,
        replicate=replicate,
        parent_gen_ids=parents,
        round=_round(meta.get("round"), where),
    )


def _parent_ids(meta: dict[str, Any], stage: Stage, parent_gen_id: str | None, where: str) -> tuple[str, ...]:
    """Every parent of a generation: a comparison's ``parent_gen_ids`` (two different essays,
    the first being ``parent_gen_id``), else ``parent_gen_id`` alone."""
    wanted = parent_count(stage)
    if wanted < 2:
        return (parent_gen_id,) if parent_gen_id else ()
    listed = meta.get("parent_gen_ids")
    if not isinstance(listed, list) or len(listed) != wanted or not all(isinstance(p, str) for p in listed):
        raise ValueError(f"metadata of {where}: parent_gen_ids must list the {wanted} parent {parent_stage(stage)} ids "
                         f"(A first, as shown to the judge), got {listed!r}")
    parents = tuple(ensure_gen_id(p.strip()) for p in listed)
    if parents[0] != parent_gen_id:
        raise ValueError(f"metadata of {where}: parent_gen_ids[0] ({parents[0]!r}) must be parent_gen_id ({parent_gen_id!r})")
    if len(set(parents)) != len(parents):
        raise ValueError(f"metadata of {where}: a {stage} needs {wanted} different parents, got {list(parents)!r}")
    return parents


def _round(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"metadata of {where}: round must be an integer >= 1, got {value!r}")
    return value


def _replicate(value: Any, where: str) -> int:
    """A replicate number >= 1 (an int, or its decimal text as CSV-born metadata holds it);
    absent or ``null`` means 1."""
    if value is None:
        return 1
    # int() alone would turn 1.5 into 1 and True into 1, and `or 1` would turn 0 into 1.
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ValueError(f"metadata of {where}: replicate must be an integer >= 1, got {value!r}")
    return int(text)
