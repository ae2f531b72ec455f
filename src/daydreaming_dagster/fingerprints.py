"""Content fingerprints of the inputs a cohort depends on, and what a template edit affects.

Pure code (no Dagster): the automation sensor (:mod:`.automation`) keeps the last fingerprints
in its cursor and compares them with these. Fingerprints hash file *contents* (SHA-256), so a
touched-but-unchanged file changes nothing and an edit that keeps the mtime is still seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .data_layer import GensDataLayer, Paths
from .types import STAGES, Stage, parent_stage

_DIGEST_CHARS = 16  # 64 bits per file keeps the sensor cursor small; collisions are not a concern here


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_DIGEST_CHARS]


def _tree_fingerprints(folder: Path, prefix: str) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    out: dict[str, str] = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            relative = path.relative_to(folder).as_posix() if hasattr(path, "relative_to") else path.name
            out[f"{prefix}/{relative}"] = _digest(path.read_bytes())
    return dict(sorted(out.items()))


def raw_fingerprints(data_root: str | Path) -> dict[str, str]:
    """``1_raw/<relative path>`` -> content digest, for every catalog, template and concept file."""
    return _tree_fingerprints(Paths.from_str(str(data_root)).raw_dir, "1_raw")


def spec_fingerprints(data_root: str | Path, cohort_id: str) -> dict[str, str]:
    """Digest of every file of a cohort's spec folder (``config.yaml`` and its ``@file:`` helpers)."""
    paths = Paths.from_str(str(data_root))
    return _tree_fingerprints(paths.cohort_spec_dir(cohort_id), f"cohorts/{cohort_id}/spec")


def combine(fingerprints: Mapping[str, str]) -> str:
    """One digest over a set of file digests (order-independent)."""
    text = "\n".join(f"{name}\t{digest}" for name, digest in sorted(fingerprints.items()))
    return _digest(text.encode("utf-8"))


def cohort_fingerprint(raw: Mapping[str, str], spec: Mapping[str, str]) -> str:
    """What a cohort's build depends on: its spec and every raw catalog file."""
    return combine({**raw, **spec})


def changed_files(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Files added, removed or edited between two fingerprint maps, sorted."""
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


@dataclass(frozen=True)
class TemplateRef:
    """A template file of a stage."""

    stage: Stage
    template_id: str


def changed_templates(files: Iterable[str]) -> list[TemplateRef]:
    """The templates among changed ``1_raw/templates/<stage>/<id>.txt`` files."""
    refs = []
    for name in files:
        parts = name.split("/")
        if len(parts) == 4 and parts[:2] == ["1_raw", "templates"] and parts[2] in STAGES and parts[3].endswith(".txt"):
            refs.append(TemplateRef(parts[2], parts[3].removesuffix(".txt")))  # type: ignore[arg-type]
    return refs


def affected_generations(
    data_root: str | Path,
    stage: Stage,
    template_id: str,
    gen_ids: Mapping[Stage, Sequence[str]] | None = None,
) -> dict[Stage, list[str]]:
    """Generations a change to ``stage``'s template ``template_id`` invalidates.

    ``result[stage]`` lists the generations rendered from the template (their prompts change,
    so the data layer drops their raw and parsed outputs on the next prompt phase); later
    stages list their descendants (their input, the parent's parsed text, will change once the
    parents are regenerated; copy-mode essays included). Earlier stages are empty. Looks at
    every generation in the gens store, or only ``gen_ids`` per stage when given (a cohort).
    """
    layer = GensDataLayer.from_root(data_root)
    affected: dict[Stage, list[str]] = {s: [] for s in STAGES}
    start = STAGES.index(stage)
    chosen_by_stage: dict[Stage, set[str]] = {}
    for index, current in enumerate(STAGES):
        if index < start:
            continue
        above = parent_stage(current)
        parents = chosen_by_stage.get(above, set()) if above is not None else set()
        candidates = list(gen_ids.get(current, [])) if gen_ids is not None else layer.list_generations(current)
        chosen = []
        for gen_id in candidates:
            try:
                meta = layer.read_main_metadata(current, gen_id)
            except (FileNotFoundError, ValueError):
                continue
            if index == start:
                hit = meta.get("template_id") == template_id
            else:
                hit = bool(set(_parents_in(meta)) & parents)
            if hit:
                chosen.append(gen_id)
        affected[current] = chosen
        chosen_by_stage[current] = set(chosen)
    return affected


def _parents_in(meta: dict[str, object]) -> list[str]:
    """Every parent a metadata file names (both essays of a comparison)."""
    listed = meta.get("parent_gen_ids")
    if isinstance(listed, list):
        return [str(p) for p in listed]
    parent = meta.get("parent_gen_id")
    return [str(parent)] if parent else []


# -- results: rebuilt only when their inputs changed ---------------------------------------------
RESULTS_FINGERPRINT_FILENAME = "results.fingerprint"
"""Beside the report: the fingerprint of the inputs the results assets were last built from."""
_RESULTS_FORMAT = "results-v2"  # bump when the results assets change what they produce


def results_fingerprint(data_root: str | Path, cohort_id: str) -> str:
    """A digest of what a cohort's results are computed from: ``membership.csv``, every
    member's seeded, raw and parsed metadata (status, score or verdict, cost, parser; a
    regenerated output always rewrites its metadata), the human ratings and pairwise
    preferences, and the results format.

    Reads files only (no Dagster, no frames): a re-run compares it with
    :func:`read_results_fingerprint` to skip rebuilding results that are current.
    """
    from .cohorts import read_membership

    paths = Paths.from_str(str(data_root))
    layer = GensDataLayer(paths.data_root)
    digest = hashlib.sha256(_RESULTS_FORMAT.encode())
    # Human pairwise preferences (the explorer's compare page) feed the tournament analysis.
    human_comparisons = paths.cohort_dir(cohort_id) / "human_comparisons.jsonl"
    for path in (paths.cohort_membership_path(cohort_id), paths.cohort_human_ratings_path(cohort_id), human_comparisons):
        digest.update(_file_bytes(path))
    members = read_membership(data_root, cohort_id)
    for stage in STAGES:
        for gen_id in members[stage]:
            digest.update(f"\n{stage}/{gen_id}".encode())
            for path in (layer.main_metadata_path(stage, gen_id), layer.raw_metadata_path(stage, gen_id),
                         layer.parsed_metadata_path(stage, gen_id)):
                digest.update(_file_bytes(path))
    return digest.hexdigest()[:32]


def _file_bytes(path: Path) -> bytes:
    try:
        return b"\x01" + path.read_bytes()
    except FileNotFoundError:
        return b"\x00"


def results_fingerprint_path(data_root: str | Path, cohort_id: str) -> Path:
    return Paths.from_str(str(data_root)).cohort_reports_dir(cohort_id) / RESULTS_FINGERPRINT_FILENAME


def read_results_fingerprint(data_root: str | Path, cohort_id: str) -> str | None:
    """The fingerprint stored by the last successful results build (``None``: never built)."""
    try:
        return results_fingerprint_path(data_root, cohort_id).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_results_fingerprint(data_root: str | Path, cohort_id: str, fingerprint: str) -> None:
    from .data_layer import _storage

    path = results_fingerprint_path(data_root, cohort_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _storage.atomic_write_text(path, fingerprint + "\n")
