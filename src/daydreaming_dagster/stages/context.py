"""What a stage run needs besides the gens store: catalogs, loaded once per run and cached.

Loading catalogs once per run (not once per generation) keeps thousands of generations per
run cheap; the cache is per :class:`StageContext`, so a new run sees edited catalogs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..catalog_types import ContentCombination, ModelInfo, TemplateInfo
from ..data_layer import GensDataLayer
from ..errors import CatalogError
from ..types import Stage


@dataclass
class StageContext:
    """Catalog access for stage functions, with per-run caches."""

    layer: GensDataLayer
    _templates: dict[Stage, dict[str, TemplateInfo]] = field(default_factory=dict)
    _template_texts: dict[tuple[Stage, str], str] = field(default_factory=dict)
    _models: dict[str, ModelInfo] | None = None
    _combos: dict[str, ContentCombination] = field(default_factory=dict)

    @classmethod
    def for_root(cls, data_root: str | Path) -> StageContext:
        return cls(GensDataLayer.from_root(data_root))

    @property
    def data_root(self) -> Path:
        return self.layer.data_root

    def templates(self, stage: Stage) -> dict[str, TemplateInfo]:
        if stage not in self._templates:
            from ..catalogs import load_templates

            self._templates[stage] = load_templates(self.data_root, stage)
        return self._templates[stage]

    def template(self, stage: Stage, template_id: str) -> TemplateInfo:
        templates = self.templates(stage)
        if template_id not in templates:
            known = ", ".join(sorted(templates)) or "(none)"
            raise CatalogError(
                f"template {template_id!r} is not in {stage}_templates.csv; known: {known}"
            )
        return templates[template_id]

    def template_text(self, stage: Stage, template_id: str) -> str:
        key = (stage, template_id)
        if key not in self._template_texts:
            from ..catalogs import load_template_text

            self._template_texts[key] = load_template_text(self.data_root, stage, template_id)
        return self._template_texts[key]

    def models(self) -> dict[str, ModelInfo]:
        if self._models is None:
            from ..catalogs import load_models

            self._models = load_models(self.data_root)
        return self._models

    def model(self, model_id: str) -> ModelInfo:
        models = self.models()
        if model_id not in models:
            known = ", ".join(sorted(models)) or "(none)"
            raise CatalogError(f"model {model_id!r} is not in llm_models.csv; known: {known}")
        return models[model_id]

    def combination(self, combo_id: str) -> ContentCombination:
        if combo_id not in self._combos:
            from ..combos import load_combinations

            # One read of combo_mappings.csv hydrates every combo; later lookups are free.
            self._combos.update(load_combinations(self.data_root))
        if combo_id not in self._combos:
            raise CatalogError(
                f"content combination {combo_id!r} is not in {self.layer.paths.combo_mappings_csv}"
            )
        return self._combos[combo_id]
