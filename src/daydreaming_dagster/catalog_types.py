"""Typed records of the catalogs under ``1_raw/`` and of content combinations.

Loaders (``catalogs``, ``combos``) build these; stages, providers and reporting consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .types import Stage


@dataclass(frozen=True)
class TemplateInfo:
    """One row of ``<stage>_templates.csv``."""

    stage: Stage
    template_id: str
    template_name: str = ""
    description: str = ""
    parser: str | None = None
    """Parser name from the registry (``None``: the stage's default parser)."""
    generator: str = "llm"
    """``llm`` (render and call a model) or ``copy`` (copy the parent's parsed text)."""
    active: bool = True
    line: int | None = None
    """Line of this row in its CSV (header = 1), for messages; ``None`` when not from a file."""


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``llm_models.csv``."""

    id: str
    """Catalog id used in cohort specs (``draft_llm: [...]``)."""
    model: str
    """Provider model name sent to the API, e.g. ``deepseek/deepseek-r1``."""
    provider: str = "openrouter"
    """Provider name: ``offline``, ``openrouter``, ``openai`` or a configured endpoint name."""
    display_name: str = ""
    specialization: str = ""
    input_price_per_mtok: float | None = None
    """USD per million prompt tokens, for cost when the provider reports none."""
    output_price_per_mtok: float | None = None
    """USD per million completion tokens."""
    requests_per_minute: float | None = None
    """Per-model request-rate limit (``None``: provider default or unlimited)."""
    tokens_per_minute: float | None = None
    """Per-model token quota, prompt and completion tokens together (``None``: unlimited)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any further columns, kept verbatim."""
    line: int | None = None
    """Line of this row in ``llm_models.csv`` (header = 1), for messages."""


@dataclass(frozen=True)
class Concept:
    """One row of ``concepts_metadata.csv``."""

    concept_id: str
    name: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ComboConcept:
    """A concept as a draft template sees it: id, name and description at the combo's level."""

    concept_id: str
    name: str
    content: str

    def as_template_value(self) -> dict[str, str]:
        return {"concept_id": self.concept_id, "name": self.name, "content": self.content}


@dataclass(frozen=True)
class ContentCombination:
    """A set of concepts at one description level (``combo_mappings.csv``), hydrated."""

    combo_id: str
    description_level: str
    k_max: int
    concepts: tuple[ComboConcept, ...]

    @property
    def contents(self) -> list[dict[str, str]]:
        """The ``concepts`` template variable: a list of {concept_id, name, content}."""
        return [c.as_template_value() for c in self.concepts]

    @property
    def concept_ids(self) -> tuple[str, ...]:
        return tuple(c.concept_id for c in self.concepts)


@dataclass(frozen=True)
class ComboRecord:
    """One combination as registered in ``combo_mappings.csv`` (not hydrated)."""

    combo_id: str
    concept_ids: tuple[str, ...]
    """Concept ids in file order."""
    description_level: str
    k_max: int
    first_line: int
    """Line of the combination's first row, for error messages."""

    def key(self) -> tuple[frozenset[str], str, int]:
        return (frozenset(c.lower() for c in self.concept_ids), self.description_level.lower(), self.k_max)
