"""Build a cohort on disk: spec -> design -> membership -> seeded generations.

``build_cohort(data_root, cohort_id)``:

1. compiles ``cohorts/<id>/spec/config.(yaml|yml|json|toml)`` (:mod:`.spec`);
2. loads the catalogs and checks every template, template file, model, combo and concept the
   cohort uses, raising one :class:`~daydreaming_dagster.errors.MembershipError` that lists
   all of them;
3. registers the combinations the spec builds from concepts in ``combo_mappings.csv``;
4. seeds each generation's ``metadata.json`` (through :class:`GensDataLayer`) *before* any
   model is called. A generation whose metadata already exists is never rewritten, so two
   cohorts sharing a draft share its directory and the first cohort stays its ``cohort_id``;
   existing metadata that contradicts the cohort (another template, parent, model...) is an
   error, not something to overwrite;
5. writes ``membership.csv`` (``stage,gen_id``, drafts, essays, evaluations, then the
   comparisons of the tournament rounds decided so far, each in membership order) and
   ``manifest.json``.

A spec with a ``tournament`` section compiles to a membership that grows: each build replays
the tournament from the verdicts on disk (:mod:`.tournament`) and adds the rounds it can now
decide.

Every write is skipped when the file already holds the same content, so re-building an
unchanged cohort touches no file (contents and mtimes stay). No Dagster here.
"""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalogs import Catalogs, load_catalogs, load_concept_description, read_csv_rows
from ..combos import register_combinations
from ..data_layer import GensDataLayer, Paths, _storage
from ..errors import CatalogError, MembershipError
from ..ids import is_valid_gen_id
from ..types import STAGES, Stage, ensure_stage
from .membership import (
    Membership,
    MembershipRow,
    build_membership,
    format_problems,
    membership_problems,
)
from .spec import SPEC_FILENAMES, CohortSpec, DesignRows, compile_spec, find_spec_file, load_spec
from .spending import spending_problems
from .tournament import TournamentState, decide_tournament, tournament_problems

__all__ = [
    "CohortBuild",
    "CompiledCohort",
    "build_cohort",
    "cohort_spec_path",
    "compile_cohort",
    "discover_cohorts",
    "load_membership",
    "read_membership",
]

MANIFEST_VERSION = 1
# Fields that identify a generation: existing metadata must agree on all of them.
_IDENTITY = ("stage", "gen_id", "template_id", "mode", "parent_gen_id", "combo_id", "llm_model_id", "replicate")
_PARALLEL_WRITES = 256  # below this many new files a thread pool costs more than it saves


@dataclass(frozen=True)
class CohortBuild:
    """What :func:`build_cohort` produced."""

    cohort_id: str
    spec_path: Path
    membership: Membership
    manifest: dict[str, Any]
    manifest_path: Path
    membership_path: Path
    combo_ids_registered: tuple[str, ...]
    """Combo ids the spec's ``combos`` section asked for (registered if new)."""
    metadata_written: int
    """Generations whose ``metadata.json`` this build created."""
    metadata_kept: int
    """Generations whose ``metadata.json`` already existed (left untouched)."""
    files_changed: tuple[str, ...]
    """Cohort files (``membership.csv``, ``manifest.json``) rewritten by this build."""
    tournament: TournamentState | None = None
    """The tournament's decided rounds (``None`` without a ``tournament`` section)."""

    @property
    def counts(self) -> dict[str, int]:
        return self.membership.counts()

    def rows(self, stage: Stage) -> tuple[MembershipRow, ...]:
        return self.membership.rows(stage)


def _paths(data_root: str | os.PathLike[str] | Path) -> Paths:
    return Paths.from_str(data_root)


def cohort_spec_path(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> Path:
    """The spec file of ``cohort_id`` (first of config.yaml/.yml/.json/.toml that exists)."""
    paths = _paths(data_root)
    if not is_valid_gen_id(cohort_id):
        raise MembershipError(f"invalid cohort id {cohort_id!r}: use ASCII letters, digits, '_' or '-'")
    return find_spec_file(paths.cohort_spec_dir(cohort_id))


def discover_cohorts(data_root: str | os.PathLike[str] | Path) -> list[str]:
    """Sorted ids of the cohorts under ``cohorts/`` that have a spec file.

    Directory names that are not valid ids (spaces, dots...) are skipped: they could not be
    partition keys.
    """
    root = _paths(data_root).cohorts_dir
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        if is_valid_gen_id(child.name) and any((child / "spec" / n).is_file() for n in SPEC_FILENAMES):
            found.append(child.name)
    return sorted(found)


# -- compile + validate --------------------------------------------------------------------
@dataclass(frozen=True)
class CompiledCohort:
    """A compiled and validated cohort (nothing written yet)."""

    spec: CohortSpec
    design: DesignRows
    catalogs: Catalogs
    membership: Membership
    tournament: TournamentState | None = None
    """The tournament as the disk decides it now (``None`` without a ``tournament`` section)."""


def _concept_problems(data_root: Any, spec: CohortSpec, catalogs: Catalogs) -> list[str]:
    problems: list[str] = []
    unknown: dict[str, None] = {}
    missing_files: dict[str, None] = {}
    for source in spec.combos:
        for concept_set in source.sets:
            for concept_id in concept_set:
                if concept_id not in catalogs.concepts:
                    unknown[concept_id] = None
                    continue
                key = f"{concept_id} ({source.level})"
                if key in missing_files:
                    continue
                try:
                    load_concept_description(data_root, concept_id, source.level)
                except CatalogError:
                    missing_files[key] = None
    if unknown:
        problems.append(
            f"unknown concept(s) in the combos section: {', '.join(unknown)} (not in concepts_metadata.csv)"
        )
    if missing_files:
        problems.append(
            f"missing concept description(s): {', '.join(missing_files)} "
            "(write 1_raw/concepts/descriptions-<level>/<concept_id>.txt)"
        )
    return problems


def _template_file_problems(data_root: Any, membership: Membership, catalogs: Catalogs) -> list[str]:
    paths = _paths(data_root)
    missing: list[str] = []
    for stage in STAGES:
        for template_id in dict.fromkeys(r.template_id for r in membership.rows(stage) if r.mode == "llm"):
            if template_id in catalogs.templates.get(stage, {}) and not paths.template_file(stage, template_id).is_file():
                missing.append(str(paths.template_file(stage, template_id)))
    return [f"missing template file(s): {', '.join(missing)}"] if missing else []


def compile_cohort(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> CompiledCohort:
    """Compile and validate a cohort without writing anything (raises on any problem)."""
    spec_path = cohort_spec_path(data_root, cohort_id)
    spec = load_spec(spec_path)
    design = compile_spec(spec)
    catalogs = load_catalogs(data_root, require_concepts=bool(spec.combos))
    generated = [r.combo_id for r in spec.combo_requests()]
    source = str(spec_path)
    membership = build_membership(design, catalogs, validate=False, source=source)
    problems = [
        *_concept_problems(data_root, spec, catalogs),
        *membership_problems(membership, catalogs, extra_combo_ids=generated),
        *_template_file_problems(data_root, membership, catalogs),
        *spending_problems(spec.adaptive, spec.essay_gate, membership),
        *(tournament_problems(spec.tournament, catalogs, _paths(data_root), bool(membership.evaluations))
          if spec.tournament is not None else []),
    ]
    if problems:
        raise MembershipError(format_problems(source, problems))
    tournament = None
    if spec.tournament is not None:
        if not membership.essays:
            raise MembershipError(f"{source}: tournament: the cohort has no essays to compare (add essay axes)")
        tournament = decide_tournament(data_root, spec.tournament, membership, gate=spec.essay_gate,
                                       adaptive=spec.adaptive, seed=spec.seed or 0)
        membership = membership.with_comparisons(tournament.comparisons)
    return CompiledCohort(spec=spec, design=design, catalogs=catalogs, membership=membership, tournament=tournament)


# -- seeding -------------------------------------------------------------------------------
def _identity(meta: dict[str, Any]) -> tuple[Any, ...]:
    def text(value: Any) -> str | None:
        return str(value).strip() or None if value not in (None, "") else None

    try:
        replicate = int(meta.get("replicate") or 1)
    except (TypeError, ValueError):
        replicate = meta.get("replicate")
    return (
        text(meta.get("stage")),
        text(meta.get("gen_id")),
        text(meta.get("template_id")),
        text(meta.get("mode")) or "llm",
        text(meta.get("parent_gen_id")),
        text(meta.get("combo_id")),
        text(meta.get("llm_model_id")),
        replicate,
    )


def _seed_metadata(layer: GensDataLayer, membership: Membership, cohort_id: str, workers: int) -> tuple[int, int]:
    """Write missing ``metadata.json`` files; return (written, kept). Conflicts raise first.

    Each new file is created only if still absent: another build seeding the same generation
    at this moment (two runs starting together, two cohorts sharing drafts) either wrote it
    first, and its file is compared like any existing one, or finds ours."""
    to_write: list[MembershipRow] = []
    conflicts: list[str] = []
    kept = 0
    for row in membership.all_rows():
        if not layer.main_metadata_path(row.stage, row.gen_id).is_file():
            to_write.append(row)
            continue
        kept += 1
        conflicts += _metadata_conflicts(layer, row, cohort_id)
    _raise_conflicts(cohort_id, conflicts)

    # One group commit for the whole seeding instead of an fsync per file.
    deferred = layer.deferred()

    def write(row: MembershipRow) -> bool:
        return deferred.create_main_metadata(row.stage, row.gen_id, row.metadata(cohort_id))

    if len(to_write) >= _PARALLEL_WRITES and workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            created = list(pool.map(write, to_write, chunksize=64))
    else:
        created = [write(row) for row in to_write]
    if to_write:
        deferred.flush()
    lost = [row for row, made in zip(to_write, created, strict=True) if not made]
    _raise_conflicts(cohort_id, [problem for row in lost for problem in _metadata_conflicts(layer, row, cohort_id)])
    return len(to_write) - len(lost), kept + len(lost)


def _metadata_conflicts(layer: GensDataLayer, row: MembershipRow, cohort_id: str) -> list[str]:
    """Why the existing ``metadata.json`` of ``row`` disagrees with the cohort (empty: agrees)."""
    path = layer.main_metadata_path(row.stage, row.gen_id)
    try:
        existing = layer.read_main_metadata(row.stage, row.gen_id)
    except ValueError as exc:
        return [f"{path}: unreadable ({exc})"]
    wanted = row.metadata(cohort_id)
    if _identity(existing) == _identity(wanted):
        return []
    diffs = [
        f"{key}={existing.get(key)!r} (cohort: {wanted[key]!r})"
        for key, old, new in zip(_IDENTITY, _identity(existing), _identity(wanted), strict=True)
        if old != new
    ]
    return [f"{path}: {', '.join(diffs)}"]


def _raise_conflicts(cohort_id: str, conflicts: list[str]) -> None:
    if not conflicts:
        return
    shown = conflicts[:20]
    more = f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
    raise MembershipError(
        f"cohort {cohort_id!r}: existing metadata.json disagrees with the cohort (it is never overwritten; "
        "move the generation directory away if it is stale):\n  - " + "\n  - ".join(shown) + more
    )


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and _storage.read_text(path) == text:
        return False
    _storage.atomic_write_text(path, text)
    return True


def _membership_csv(membership: Membership) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("stage", "gen_id"))
    for row in membership.all_rows():
        writer.writerow((row.stage, row.gen_id))
    return buffer.getvalue()


def _manifest(cohort_id: str, compiled: CompiledCohort, spec_path: Path, cohort_dir: Path) -> dict[str, Any]:
    membership = compiled.membership
    try:
        spec_rel = str(spec_path.relative_to(cohort_dir))
    except ValueError:
        spec_rel = str(spec_path)
    used: dict[str, Any] = {"combos": membership.combo_ids()}
    for stage in STAGES:
        rows = membership.rows(stage)
        used[f"{stage}_templates"] = list(dict.fromkeys(r.template_id for r in rows))
        used[f"{stage}_llms"] = list(dict.fromkeys(r.llm_model_id for r in rows if r.llm_model_id is not None))
    return {
        "manifest_version": MANIFEST_VERSION,
        "cohort_id": cohort_id,
        "spec": spec_rel,
        "spec_sha256": compiled.spec.digest(),
        "design_rows": len(compiled.design),
        "fields": list(compiled.design.fields),
        "counts": membership.counts(),
        "model_calls": membership.model_calls(),
        "generated_combos": {
            source.name: [r.combo_id for r in source.requests()] for source in compiled.spec.combos
        },
        **used,
    }


def build_cohort(data_root: str | os.PathLike[str] | Path, cohort_id: str, *, workers: int = 4) -> CohortBuild:
    """Compile, validate, register combos, seed metadata and write the cohort's files.

    Raises :class:`~daydreaming_dagster.errors.SpecError` for a bad spec and
    :class:`~daydreaming_dagster.errors.MembershipError` listing every unknown catalog value
    or conflicting existing metadata; nothing is written before validation passes, and
    ``membership.csv`` is written only after every listed generation has its metadata.
    ``workers`` threads write new metadata files concurrently (each write is fsynced).
    """
    paths = _paths(data_root)
    compiled = compile_cohort(data_root, cohort_id)
    spec_path = compiled.spec.path
    combo_ids = tuple(register_combinations(data_root, compiled.spec.combo_requests()))
    written, kept = _seed_metadata(GensDataLayer(paths.data_root), compiled.membership, cohort_id, workers)
    membership_path = paths.cohort_membership_path(cohort_id)
    manifest_path = paths.cohort_manifest_path(cohort_id)
    manifest = _manifest(cohort_id, compiled, spec_path, paths.cohort_dir(cohort_id))
    changed = []
    if _write_if_changed(membership_path, _membership_csv(compiled.membership)):
        changed.append(str(membership_path))
    if _write_if_changed(manifest_path, _storage.dump_json(manifest)):
        changed.append(str(manifest_path))
    return CohortBuild(
        cohort_id=cohort_id,
        spec_path=spec_path,
        membership=compiled.membership,
        manifest=manifest,
        manifest_path=manifest_path,
        membership_path=membership_path,
        combo_ids_registered=combo_ids,
        metadata_written=written,
        metadata_kept=kept,
        files_changed=tuple(changed),
        tournament=compiled.tournament,
    )


# -- reading a built cohort ----------------------------------------------------------------
def read_membership(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> dict[Stage, list[str]]:
    """Gen ids per stage from ``cohorts/<id>/membership.csv``, in file order.

    Raises :class:`MembershipError` when the file is missing (build the cohort first) or has
    an unknown stage, an invalid id or a duplicate row.
    """
    paths = _paths(data_root)
    path = paths.cohort_membership_path(cohort_id)
    if not path.is_file():
        raise MembershipError(
            f"cohort {cohort_id!r} has no membership file {path}; build it first "
            "(`daydream cohort build <id>` or materialize the cohort assets)"
        )
    try:
        _header, rows = read_csv_rows(path, ("stage", "gen_id"), "membership file")
    except CatalogError as exc:
        raise MembershipError(str(exc)) from None
    result: dict[Stage, list[str]] = {stage: [] for stage in STAGES}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        try:
            stage = ensure_stage(row.get("stage"))
        except ValueError as exc:
            raise MembershipError(f"{path} line {row.line}: {exc}") from None
        gen_id = row.get("gen_id")
        if not is_valid_gen_id(gen_id):
            raise MembershipError(f"{path} line {row.line}: invalid gen_id {gen_id!r}")
        if (stage, gen_id) in seen:
            raise MembershipError(f"{path} line {row.line}: {stage} {gen_id} is listed twice")
        seen.add((stage, gen_id))
        result[stage].append(gen_id)
    return result


def load_membership(data_root: str | os.PathLike[str] | Path, cohort_id: str) -> Membership:
    """A built cohort's full membership rows, from ``membership.csv`` and each generation's
    seeded ``metadata.json`` (the on-disk truth, not a re-compile of the spec)."""
    layer = GensDataLayer.from_root(data_root)
    per_stage = read_membership(data_root, cohort_id)
    rows: dict[str, list[MembershipRow]] = {}
    for stage in STAGES:
        stage_rows = []
        for gen_id in per_stage[stage]:
            try:
                meta = layer.read_main_metadata(stage, gen_id)
            except FileNotFoundError:
                raise MembershipError(
                    f"cohort {cohort_id!r} lists {stage} {gen_id} but its metadata.json is missing; rebuild the cohort"
                ) from None
            stage_rows.append(_row_from_metadata(stage, gen_id, meta))
        rows[stage] = stage_rows
    return Membership(drafts=tuple(rows["draft"]), essays=tuple(rows["essay"]), evaluations=tuple(rows["evaluation"]),
                      comparisons=tuple(rows["comparison"]))


def _row_from_metadata(stage: Stage, gen_id: str, meta: dict[str, Any]) -> MembershipRow:
    model = meta.get("llm_model_id")
    parent = meta.get("parent_gen_id")
    parents = meta.get("parent_gen_ids")
    round_number = meta.get("round")
    return MembershipRow(
        stage=stage,
        gen_id=gen_id,
        parent_gen_id=str(parent) if parent else None,
        template_id=str(meta.get("template_id") or ""),
        llm_model_id=str(model) if model else None,
        combo_id=str(meta.get("combo_id") or ""),
        replicate=int(meta.get("replicate") or 1),
        mode=str(meta.get("mode") or "llm"),
        parent_gen_ids=tuple(str(p) for p in parents) if isinstance(parents, list) else (),
        round=round_number if isinstance(round_number, int) and not isinstance(round_number, bool) else None,
    )
