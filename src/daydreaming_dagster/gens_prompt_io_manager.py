"""Prompt IO manager backed by the data layer (seeds 001 and 003).

A prompt asset's value is ``{gen_id: prompt_text}`` for the partitions of its step (one key
for a per-partition run, a whole range for a single-run backfill). Storing goes through
:meth:`GensDataLayer.store_prompt`, so an identical prompt is never rewritten and a changed one
clears the raw and parsed outputs derived from the old one.
"""

from __future__ import annotations

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from .data_layer import GensDataLayer, default_data_root
from .types import ensure_stage


def _stage_of(asset_name: str) -> str:
    return ensure_stage(asset_name.rsplit("_", 1)[0])


class GensPromptIOManager(ConfigurableIOManager):
    """Persists ``<stage>_prompt`` values to ``gens/<stage>/<gen_id>/prompt.txt``."""

    data_root: str = Field(default_factory=default_data_root)

    def _layer(self) -> GensDataLayer:
        return GensDataLayer.from_root(self.data_root)

    def handle_output(self, context: OutputContext, obj: dict[str, str] | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, dict):
            raise TypeError(f"{context.asset_key.to_user_string()} must return a dict gen_id -> prompt text")
        stage = _stage_of(context.asset_key.path[-1])
        layer = self._layer()
        for gen_id in context.asset_partition_keys:
            if gen_id in obj:
                layer.store_prompt(stage, gen_id, obj[gen_id])  # type: ignore[arg-type]

    def load_input(self, context: InputContext) -> dict[str, str]:
        upstream = context.upstream_output
        assert upstream is not None and upstream.asset_key is not None
        stage = _stage_of(upstream.asset_key.path[-1])
        layer = self._layer()
        prompts: dict[str, str] = {}
        for gen_id in context.asset_partition_keys:
            # A generation whose prompt failed is absent here; its raw phase reports why.
            if layer.prompt_exists(stage, gen_id):  # type: ignore[arg-type]
                prompts[gen_id] = layer.read_prompt(stage, gen_id)  # type: ignore[arg-type]
        return prompts
