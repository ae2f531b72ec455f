"""Content combinations: sets of concepts at one description level (DESIGN §3).

A combination is named by a deterministic ``combo_id`` computed from (sorted concept ids,
description level, ``k_max``) by :func:`daydreaming_dagster.ids.combo_id_for`. The registry
``<data_root>/combo_mappings.csv`` is append-only, one row per concept per combination::

    combo_id,version,concept_id,description_level,k_max,created_at

Registering an existing combination changes nothing (the file is not rewritten); a combo id
already registered with *different* contents is a collision and raises
:class:`~daydreaming_dagster.errors.CatalogError`. Loading hydrates each combination with the
concept names (``concepts_metadata.csv``) and descriptions at the combination's level, which
is what draft templates receive as ``concepts``. No Dagster here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .catalog_types import ComboConcept, ComboRecord, ContentCombination
from .catalogs import (
    load_concept_description,
    load_concepts,
    read_combo_mappings,
    registered_combo_ids,
)
from .catalogs import mappings_path as _mappings_path
from .data_layer import _storage
from .data_layer.paths import DESCRIPTION_LEVELS
from .errors import CatalogError
from .ids import combo_id_for

__all__ = [
    "COMBO_MAPPING_COLUMNS",
    "COMBO_MAPPING_VERSION",
    "ComboRequest",
    "ComboRecord",
    "combo_id_for",
    "k_combinations",
    "load_combinations",
    "read_combo_mappings",
    "register_combination",
    "register_combinations",
    "registered_combo_ids",
]

COMBO_MAPPING_COLUMNS: tuple[str, ...] = (
    "combo_id",
    "version",
    "concept_id",
    "description_level",
    "k_max",
    "created_at",
)
COMBO_MAPPING_VERSION = "v1"


@dataclass(frozen=True)
class ComboRequest:
    """A combination to register: concept ids, description level and ``k_max``."""

    concept_ids: tuple[str, ...]
    description_level: str
    k_max: int

    @property
    def combo_id(self) -> str:
        return combo_id_for(self.concept_ids, self.description_level, self.k_max)

    def key(self) -> tuple[frozenset[str], str, int]:
        """What must match for two registrations of the same id to be the same combination."""
        return (frozenset(c.lower() for c in self.concept_ids), self.description_level.lower(), self.k_max)


def k_combinations(concept_ids: Sequence[str], k: int) -> list[tuple[str, ...]]:
    """Every ``k``-subset of ``concept_ids`` (duplicates removed, input order kept in each tuple).

    ``k_combinations(["a", "b", "c"], 2) == [("a", "b"), ("a", "c"), ("b", "c")]``.
    Raises ``ValueError`` when ``k`` is not between 1 and the number of distinct concepts.
    """
    unique = list(dict.fromkeys(concept_ids))
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(unique):
        raise ValueError(f"k must be an integer between 1 and {len(unique)} (the number of distinct concepts), got {k!r}")
    return list(itertools.combinations(unique, k))


@contextlib.contextmanager
def _registry_lock(path: Path) -> Iterator[None]:
    """Serialise read-check-append of the registry between processes (local roots only)."""
    if not _storage.is_local(path):
        yield  # object stores have no advisory locks; cohort builds there must not overlap
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _validate_request(request: ComboRequest) -> ComboRequest:
    level = str(request.description_level).strip()
    if level not in DESCRIPTION_LEVELS:
        raise CatalogError(f"unknown description level {level!r}; known: {', '.join(DESCRIPTION_LEVELS)}")
    concepts = tuple(sorted(dict.fromkeys(str(c).strip() for c in request.concept_ids)))
    if not concepts or any(not c for c in concepts):
        raise CatalogError(f"a combination needs non-empty concept ids, got {list(request.concept_ids)!r}")
    if isinstance(request.k_max, bool) or int(request.k_max) < len(concepts):
        raise CatalogError(
            f"k_max={request.k_max!r} is smaller than the {len(concepts)} concepts of combination {list(concepts)}"
        )
    return ComboRequest(concept_ids=concepts, description_level=level, k_max=int(request.k_max))


def register_combinations(
    data_root: str | os.PathLike[str] | Path, requests: Iterable[ComboRequest]
) -> list[str]:
    """Register several combinations at once; return their combo ids in request order.

    New combinations are appended (the whole file is rewritten atomically, once); known ones
    leave the file untouched. Raises :class:`CatalogError` on a collision: an id already
    registered (or requested twice in this call) with different concepts, level or ``k_max``.
    """
    path = _mappings_path(data_root)
    validated = [_validate_request(r) for r in requests]
    if not validated:
        return []
    if path.exists():
        # Fast path without the lock (and without creating a lock file): everything known.
        existing = read_combo_mappings(data_root)
        if all(r.combo_id in existing and existing[r.combo_id].key() == r.key() for r in validated):
            return [r.combo_id for r in validated]
    with _registry_lock(path):
        existing = read_combo_mappings(data_root)
        known = {combo_id: record.key() for combo_id, record in existing.items()}
        new: dict[str, ComboRequest] = {}
        ids: list[str] = []
        for request in validated:
            combo_id = request.combo_id
            ids.append(combo_id)
            if combo_id in known:
                if known[combo_id] != request.key():
                    where = f"line {existing[combo_id].first_line}" if combo_id in existing else "this request"
                    raise CatalogError(
                        f"combo id collision in {path}: {combo_id!r} ({where}) already names a different "
                        f"combination than concepts={list(request.concept_ids)}, "
                        f"level={request.description_level!r}, k_max={request.k_max}; "
                        "remove the conflicting rows or choose another k_max"
                    )
                continue
            known[combo_id] = request.key()
            new[combo_id] = request
        if new:
            _append_rows(path, new)
    return ids


def _append_rows(path: Path, new: dict[str, ComboRequest]) -> None:
    previous = _storage.read_text(path).removeprefix("\ufeff") if path.exists() else ""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if not previous.strip():
        previous = ""
        writer.writerow(COMBO_MAPPING_COLUMNS)
    elif not previous.endswith("\n"):
        previous += "\n"
    header = next(csv.reader(io.StringIO(previous))) if previous else list(COMBO_MAPPING_COLUMNS)
    header = [h.strip() for h in header]
    created_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    for combo_id, request in new.items():
        for concept_id in request.concept_ids:
            values = {
                "combo_id": combo_id,
                "version": COMBO_MAPPING_VERSION,
                "concept_id": concept_id,
                "description_level": request.description_level,
                "k_max": str(request.k_max),
                "created_at": created_at,
            }
            # Keep the registry's own column order (older registries may order columns differently).
            writer.writerow([values.get(column, "") for column in header])
    _storage.atomic_write_text(path, previous + buffer.getvalue())


def register_combination(
    data_root: str | os.PathLike[str] | Path,
    concept_ids: Iterable[str],
    description_level: str,
    k_max: int,
) -> str:
    """Register one combination (if new) in ``combo_mappings.csv`` and return its combo id.

    Raises :class:`CatalogError` for an unknown level, ``k_max`` below the concept count, or a
    combo id collision with a different registered combination.
    """
    request = ComboRequest(tuple(concept_ids), description_level, k_max)
    return register_combinations(data_root, [request])[0]


def load_combinations(
    data_root: str | os.PathLike[str] | Path, combo_ids: Iterable[str] | None = None
) -> dict[str, ContentCombination]:
    """Hydrate registered combinations with concept names and descriptions at their level.

    ``combo_ids=None`` loads every registered combination; otherwise those ids, in the given
    order. Raises :class:`CatalogError` listing every unknown combo id, or naming a combination
    whose concept is missing from ``concepts_metadata.csv`` or lacks a description file.
    """
    records = read_combo_mappings(data_root)
    wanted = list(records) if combo_ids is None else list(dict.fromkeys(combo_ids))
    unknown = [c for c in wanted if c not in records]
    if unknown:
        raise CatalogError(
            f"unknown combo id(s) {', '.join(unknown)}: not in {_mappings_path(data_root)}; "
            "register them (a spec's combos section does) or fix the cohort spec"
        )
    if not wanted:
        return {}
    concepts = load_concepts(data_root)
    result: dict[str, ContentCombination] = {}
    for combo_id in wanted:
        record = records[combo_id]
        members: list[ComboConcept] = []
        for concept_id in record.concept_ids:
            concept = concepts.get(concept_id)
            if concept is None:
                raise CatalogError(
                    f"combo {combo_id!r} ({_mappings_path(data_root)} line {record.first_line}) uses concept "
                    f"{concept_id!r}, which is not in concepts_metadata.csv"
                )
            try:
                content = load_concept_description(data_root, concept_id, record.description_level)
            except CatalogError as exc:
                raise CatalogError(f"combo {combo_id!r}: {exc}") from None
            members.append(ComboConcept(concept_id=concept_id, name=concept.name, content=content))
        result[combo_id] = ContentCombination(
            combo_id=combo_id,
            description_level=record.description_level,
            k_max=record.k_max,
            concepts=tuple(members),
        )
    return result
