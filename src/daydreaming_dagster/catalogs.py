"""Catalog loaders for the data root's ``1_raw/`` directory (DESIGN §2).

Each loader reads one CSV (or one text file), checks the columns it needs and returns typed
records from :mod:`daydreaming_dagster.catalog_types`. A malformed catalog raises
:class:`~daydreaming_dagster.errors.CatalogError` naming the file, the row (1-based line number
in the file, header = line 1), the column and the value, so the fix is obvious.

Files read here::

    1_raw/<stage>_templates.csv       template_id,template_name,description,parser,generator[,active]
    1_raw/templates/<stage>/<id>.txt  Jinja2 template text
    1_raw/llm_models.csv              id,model,provider,display_name,specialization
                                      [,input_price_per_mtok,output_price_per_mtok,requests_per_minute,
                                       tokens_per_minute]
    1_raw/concepts_metadata.csv       concept_id,name[,...]
    1_raw/concepts/descriptions-<level>/<concept_id>.txt

Only ``template_id`` (templates), ``id`` and ``model`` (models), ``concept_id`` and ``name``
(concepts) are required columns; the others default as documented on the record types.
No Dagster here.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog_types import ComboRecord, Concept, ModelInfo, TemplateInfo
from .data_layer import _storage
from .data_layer.paths import DESCRIPTION_LEVELS, Paths
from .errors import CatalogError
from .ids import is_valid_catalog_id
from .types import STAGES, Stage, ensure_stage

__all__ = [
    "GENERATORS",
    "Catalogs",
    "CsvRow",
    "load_catalogs",
    "load_concept_description",
    "load_concepts",
    "load_models",
    "load_template_text",
    "load_templates",
    "read_csv_rows",
]

GENERATORS: tuple[str, ...] = ("llm", "copy")
"""Allowed values of a template's ``generator`` column."""

_TRUE = {"", "1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}
_MODEL_COLUMNS = ("id", "model", "provider", "display_name", "specialization")
_MODEL_NUMBERS = ("input_price_per_mtok", "output_price_per_mtok", "requests_per_minute", "tokens_per_minute")


@dataclass(frozen=True)
class CsvRow:
    """One data row of a catalog CSV with its 1-based line number (header is line 1)."""

    line: int
    values: dict[str, str]

    def get(self, column: str) -> str:
        """Stripped cell value ('' when the column is absent or the cell empty)."""
        return (self.values.get(column) or "").strip()


def _root(data_root: str | os.PathLike[str] | Path) -> Paths:
    return Paths.from_str(data_root)


def read_csv_rows(path: Path, required: tuple[str, ...], what: str) -> tuple[list[str], list[CsvRow]]:
    """Read a CSV with a header; check ``required`` columns exist; return (header, rows).

    Blank lines are skipped. A UTF-8 byte-order mark is tolerated (spreadsheet exports).
    Raises :class:`CatalogError` when the file is missing, has no header, or lacks a column.
    """
    try:
        text = _storage.read_text(path)
    except FileNotFoundError:
        raise CatalogError(f"{what} not found: {path}; create it (see DESIGN.md §2 for its columns)") from None
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CatalogError(f"{path}: the file is empty; expected a header with columns {', '.join(required)}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise CatalogError(
            f"{path}: missing required column(s) {', '.join(missing)}; header is {','.join(header)}"
        )
    duplicates = sorted({h for h in header if h and header.count(h) > 1})
    if duplicates:
        raise CatalogError(f"{path}: duplicate column(s) {', '.join(duplicates)} in the header")
    rows: list[CsvRow] = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise CatalogError(
                f"{path} line {line}: {len(cells)} cells but the header has {len(header)} columns "
                "(quote values that contain commas)"
            )
        rows.append(CsvRow(line=line, values=dict(zip(header, cells, strict=False))))
    return header, rows


def _require_cell(path: Path, row: CsvRow, column: str) -> str:
    value = row.get(column)
    if not value:
        raise CatalogError(f"{path} line {row.line}: column {column!r} is empty")
    return value


def _require_id(path: Path, row: CsvRow, column: str) -> str:
    value = _require_cell(path, row, column)
    if not is_valid_catalog_id(value):
        raise CatalogError(
            f"{path} line {row.line}: {column} {value!r} is not a valid id "
            "(use ASCII letters, digits, '_', '-' or '.', starting with a letter or digit)"
        )
    return value


def _unique(path: Path, seen: dict[str, int], key: str, row: CsvRow, column: str) -> None:
    if key in seen:
        raise CatalogError(f"{path} line {row.line}: duplicate {column} {key!r} (first on line {seen[key]})")
    seen[key] = row.line


def _parse_bool(path: Path, row: CsvRow, column: str) -> bool:
    value = row.get(column).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise CatalogError(f"{path} line {row.line}: column {column!r} must be true or false, got {value!r}")


def _parse_float(path: Path, row: CsvRow, column: str) -> float | None:
    value = row.get(column)
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise CatalogError(f"{path} line {row.line}: column {column!r} must be a number, got {value!r}") from None
    if number < 0:
        raise CatalogError(f"{path} line {row.line}: column {column!r} must not be negative, got {value!r}")
    return number


# -- templates -----------------------------------------------------------------------------
def load_templates(data_root: str | os.PathLike[str] | Path, stage: Stage) -> dict[str, TemplateInfo]:
    """Load ``1_raw/<stage>_templates.csv`` into ``{template_id: TemplateInfo}`` (file order).

    ``generator`` defaults to ``llm`` and must be ``llm`` or ``copy``; an empty ``parser`` means
    the stage's default parser; ``active`` defaults to true.
    """
    stage = ensure_stage(stage)
    path = _root(data_root).templates_csv(stage)
    _header, rows = read_csv_rows(path, ("template_id",), f"{stage} templates catalog")
    templates: dict[str, TemplateInfo] = {}
    seen: dict[str, int] = {}
    for row in rows:
        template_id = _require_id(path, row, "template_id")
        _unique(path, seen, template_id, row, "template_id")
        generator = (row.get("generator") or "llm").lower()
        if generator not in GENERATORS:
            raise CatalogError(
                f"{path} line {row.line}: generator {generator!r} of template {template_id!r} "
                f"is not one of {', '.join(GENERATORS)}"
            )
        if generator == "copy" and stage != "essay":
            raise CatalogError(
                f"{path} line {row.line}: template {template_id!r} uses generator 'copy', which only "
                "essays support (an essay copies its draft); use 'llm'"
            )
        templates[template_id] = TemplateInfo(
            stage=stage,
            template_id=template_id,
            template_name=row.get("template_name"),
            description=row.get("description"),
            parser=row.get("parser") or None,
            generator=generator,
            active=_parse_bool(path, row, "active"),
            line=row.line,
        )
    return templates


def load_template_text(data_root: str | os.PathLike[str] | Path, stage: Stage, template_id: str) -> str:
    """Return the text of ``1_raw/templates/<stage>/<template_id>.txt``.

    Raises :class:`CatalogError` naming the expected path when the file is missing.
    """
    stage = ensure_stage(stage)
    if not is_valid_catalog_id(template_id):
        raise CatalogError(f"invalid {stage} template id {template_id!r}")
    path = _root(data_root).template_file(stage, template_id)
    try:
        return _storage.read_text(path)
    except FileNotFoundError:
        raise CatalogError(
            f"template file for {stage} template {template_id!r} not found: {path}; "
            f"create it or fix template_id in {stage}_templates.csv"
        ) from None


# -- models --------------------------------------------------------------------------------
def load_models(data_root: str | os.PathLike[str] | Path) -> dict[str, ModelInfo]:
    """Load ``1_raw/llm_models.csv`` into ``{id: ModelInfo}`` (file order).

    Empty ``provider`` means ``openrouter``; empty price/rate cells mean ``None``; columns the
    record does not name are kept in ``extra``.
    """
    path = _root(data_root).llm_models_csv
    header, rows = read_csv_rows(path, ("id", "model"), "model catalog")
    known = set(_MODEL_COLUMNS) | set(_MODEL_NUMBERS)
    models: dict[str, ModelInfo] = {}
    seen: dict[str, int] = {}
    for row in rows:
        model_id = _require_id(path, row, "id")
        _unique(path, seen, model_id, row, "id")
        models[model_id] = ModelInfo(
            id=model_id,
            model=_require_cell(path, row, "model"),
            provider=row.get("provider") or "openrouter",
            display_name=row.get("display_name"),
            specialization=row.get("specialization"),
            input_price_per_mtok=_parse_float(path, row, "input_price_per_mtok"),
            output_price_per_mtok=_parse_float(path, row, "output_price_per_mtok"),
            requests_per_minute=_parse_float(path, row, "requests_per_minute"),
            tokens_per_minute=_parse_float(path, row, "tokens_per_minute"),
            extra={c: row.get(c) for c in header if c and c not in known},
            line=row.line,
        )
    return models


# -- concepts ------------------------------------------------------------------------------
def load_concepts(data_root: str | os.PathLike[str] | Path) -> dict[str, Concept]:
    """Load ``1_raw/concepts_metadata.csv`` into ``{concept_id: Concept}`` (file order)."""
    path = _root(data_root).concepts_metadata_csv
    header, rows = read_csv_rows(path, ("concept_id", "name"), "concept catalog")
    concepts: dict[str, Concept] = {}
    seen: dict[str, int] = {}
    for row in rows:
        concept_id = _require_id(path, row, "concept_id")
        _unique(path, seen, concept_id, row, "concept_id")
        concepts[concept_id] = Concept(
            concept_id=concept_id,
            name=_require_cell(path, row, "name"),
            extra={c: row.get(c) for c in header if c and c not in ("concept_id", "name")},
        )
    return concepts


def load_concept_description(data_root: str | os.PathLike[str] | Path, concept_id: str, level: str) -> str:
    """Return a concept's description at ``level`` (``sentence``, ``paragraph``, ``article``),
    stripped of surrounding whitespace.

    Raises :class:`CatalogError` for an unknown level, an invalid id, a missing or empty file.
    """
    if level not in DESCRIPTION_LEVELS:
        raise CatalogError(f"unknown description level {level!r}; known: {', '.join(DESCRIPTION_LEVELS)}")
    if not is_valid_catalog_id(concept_id):
        raise CatalogError(f"invalid concept id {concept_id!r}")
    path = _root(data_root).concept_description_path(level, concept_id)
    try:
        text = _storage.read_text(path).strip()
    except FileNotFoundError:
        raise CatalogError(
            f"description of concept {concept_id!r} at level {level!r} not found: {path}; "
            "write it or use another description level"
        ) from None
    if not text:
        raise CatalogError(f"description of concept {concept_id!r} at level {level!r} is empty: {path}")
    return text


# -- everything at once --------------------------------------------------------------------
@dataclass(frozen=True)
class Catalogs:
    """Every catalog a cohort build validates against."""

    templates: dict[Stage, dict[str, TemplateInfo]]
    """Templates per stage."""
    models: dict[str, ModelInfo]
    """Models by catalog id."""
    concepts: dict[str, Concept] = field(default_factory=dict)
    """Concepts by id (empty when ``concepts_metadata.csv`` is absent)."""
    combo_ids: frozenset[str] = frozenset()
    """Combo ids registered in ``combo_mappings.csv``."""

    def template(self, stage: Stage, template_id: str) -> TemplateInfo | None:
        return self.templates.get(stage, {}).get(template_id)

    def iter_templates(self) -> Iterator[TemplateInfo]:
        for stage in STAGES:
            yield from self.templates.get(stage, {}).values()


def load_catalogs(data_root: str | os.PathLike[str] | Path, *, require_concepts: bool = False) -> Catalogs:
    """Load templates of every stage, models, concepts and registered combo ids.

    A missing template or model CSV yields an empty catalog (validation then reports every
    value as unknown, naming the file). The concept catalog is optional unless
    ``require_concepts`` (a spec that builds combos from concepts needs it).
    """
    paths = _root(data_root)
    # A missing template or model catalog is tolerated here: a drafts-only cohort needs no
    # evaluation templates, and membership validation names the file when a value is unknown.
    templates = {
        stage: load_templates(data_root, stage) if paths.templates_csv(stage).exists() else {}
        for stage in STAGES
    }
    models = load_models(data_root) if paths.llm_models_csv.exists() else {}
    concepts: dict[str, Any] = {}
    if require_concepts or paths.concepts_metadata_csv.exists():
        concepts = load_concepts(data_root)
    return Catalogs(
        templates=templates,
        models=models,
        concepts=concepts,
        combo_ids=frozenset(registered_combo_ids(data_root)),
    )


# -- the combination registry (combo_mappings.csv) -------------------------------------------
# Read here, with the other catalogs, so that load_catalogs needs nothing from combos.py
# (which builds on this module: concepts, CSV reading); combos.py registers new combinations.
_COMBO_REQUIRED = ("combo_id", "concept_id", "description_level", "k_max")


def mappings_path(data_root: str | os.PathLike[str] | Path) -> Path:
    return Paths.from_str(data_root).combo_mappings_csv


def _parse_k_max(path: Path, line: int, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CatalogError(f"{path} line {line}: k_max must be an integer, got {value!r}") from None
    if number < 1:
        raise CatalogError(f"{path} line {line}: k_max must be >= 1, got {value!r}")
    return number


def read_combo_mappings(data_root: str | os.PathLike[str] | Path) -> dict[str, ComboRecord]:
    """Read ``combo_mappings.csv`` into ``{combo_id: ComboRecord}`` (file order).

    A missing file means no combinations yet. Rows of one combo must agree on level and
    ``k_max``, and a concept may appear once per combo; otherwise :class:`CatalogError`.
    """
    path = mappings_path(data_root)
    if not path.exists():
        return {}
    _header, rows = read_csv_rows(path, _COMBO_REQUIRED, "combo registry")
    concepts: dict[str, list[str]] = {}
    meta: dict[str, tuple[str, int, int]] = {}
    for row in rows:
        combo_id = row.get("combo_id")
        concept_id = row.get("concept_id")
        level = row.get("description_level")
        for column, value in (("combo_id", combo_id), ("concept_id", concept_id), ("description_level", level)):
            if not value:
                raise CatalogError(f"{path} line {row.line}: column {column!r} is empty")
        k_max = _parse_k_max(path, row.line, row.get("k_max"))
        if combo_id not in meta:
            meta[combo_id] = (level, k_max, row.line)
            concepts[combo_id] = []
        first_level, first_k, first_line = meta[combo_id]
        if (level, k_max) != (first_level, first_k):
            raise CatalogError(
                f"{path} line {row.line}: combo {combo_id!r} has description_level={level!r}, k_max={k_max} "
                f"but line {first_line} says description_level={first_level!r}, k_max={first_k}"
            )
        if concept_id in concepts[combo_id]:
            raise CatalogError(f"{path} line {row.line}: concept {concept_id!r} listed twice in combo {combo_id!r}")
        concepts[combo_id].append(concept_id)
    return {
        combo_id: ComboRecord(
            combo_id=combo_id,
            concept_ids=tuple(concepts[combo_id]),
            description_level=meta[combo_id][0],
            k_max=meta[combo_id][1],
            first_line=meta[combo_id][2],
        )
        for combo_id in meta
    }


def registered_combo_ids(data_root: str | os.PathLike[str] | Path) -> list[str]:
    """Combo ids in ``combo_mappings.csv``, in file order (empty when the file is absent)."""
    return list(read_combo_mappings(data_root))
