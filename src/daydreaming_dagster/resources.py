"""Dagster resources: the data root and the stage settings (thin wrappers over pure config)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from .data_layer import GensDataLayer, Paths, default_data_root
from .stages.settings import StageSettings
from .types import Stage


class DataRootResource(ConfigurableResource):
    """Where the data root lives (a local directory or an ``s3://`` URL)."""

    root: str = Field(default_factory=default_data_root, description="Data root path or URL.")

    def layer(self) -> GensDataLayer:
        return GensDataLayer.from_root(self.root)

    def paths(self) -> Paths:
        return Paths.from_str(self.root)


class StageSettingsResource(ConfigurableResource):
    """Per-stage generation settings, the one place stage code reads them from."""

    force_draft: bool = False
    force_essay: bool = False
    force_evaluation: bool = False
    draft_min_lines: int = 3
    max_tokens_draft: int | None = 4096
    max_tokens_essay: int | None = 8192
    max_tokens_evaluation: int | None = 4096
    temperature_draft: float | None = 0.7
    temperature_essay: float | None = 0.7
    temperature_evaluation: float | None = 0.0

    def for_stage(self, stage: Stage) -> StageSettings:
        return StageSettings(
            force=getattr(self, f"force_{stage}"),
            min_lines=self.draft_min_lines if stage == "draft" else 0,
            max_tokens=getattr(self, f"max_tokens_{stage}"),
            temperature=getattr(self, f"temperature_{stage}"),
        )
