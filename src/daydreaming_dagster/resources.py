"""Dagster resources: the data root and the stage settings (thin wrappers over pure config)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dagster import ConfigurableResource
from pydantic import Field

from .data_layer import GensDataLayer, Paths, default_data_root
from .errors import ConfigError
from .stages.settings import StageSettings
from .types import Stage

CONCURRENCY_ENV = "DAYDREAMING_LLM_CONCURRENCY"
DEFAULT_CONCURRENCY = 16

if TYPE_CHECKING:
    from .catalog_types import ModelInfo
    from .llm.base import LLMProvider
    from .llm.routes import LLMConfig
    from .llm.scope import CallScope
    from .llm.slots import CallSlots


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
    force_comparison: bool = False
    draft_min_lines: int = 3
    max_tokens_draft: int | None = 4096
    max_tokens_essay: int | None = 8192
    max_tokens_evaluation: int | None = 4096
    max_tokens_comparison: int | None = 4096
    temperature_draft: float | None = 0.7
    temperature_essay: float | None = 0.7
    temperature_evaluation: float | None = 0.0
    temperature_comparison: float | None = 0.0

    def for_stage(self, stage: Stage) -> StageSettings:
        return StageSettings(
            force=getattr(self, f"force_{stage}"),
            min_lines=self.draft_min_lines if stage == "draft" else 0,
            max_tokens=getattr(self, f"max_tokens_{stage}"),
            temperature=getattr(self, f"temperature_{stage}"),
        )


class LLMResource(ConfigurableResource):
    """How model calls are made: concurrency, retries, budget, endpoint override.

    Unset fields fall back to the ``DAYDREAMING_LLM_*`` environment variables, then to the
    defaults of :class:`~daydreaming_dagster.llm.router.LLMConfig`. Keys never live here:
    providers read them from the environment (``OPENROUTER_API_KEY``...).
    """

    concurrency: int | None = Field(default=None, ge=1, description="Model calls in flight at once, per run (per scope when `scope` is set; default: $DAYDREAMING_LLM_CONCURRENCY or 16).")
    max_cost: float | None = Field(default=None, description="USD budget; no new call starts once spent.")
    timeout_s: float | None = Field(default=None, gt=0, description="Per-attempt HTTP timeout.")
    max_attempts: int | None = Field(default=None, ge=1, description="Attempts per call on retryable errors.")
    base_url: str | None = Field(default=None, description="Send every non-offline model to this OpenAI-compatible endpoint.")
    scope: str | None = Field(default=None, description="Runs in one process with the same scope share one cap on calls in flight, the per-model rates and the budget (set by `daydream run` when stages overlap).")
    offline: bool = Field(default=False, description="Explicit opt-in: models without a usable route (no key) get synthetic text from the offline provider instead of stopping the run (also $DAYDREAMING_OFFLINE=1).")

    def effective_concurrency(self) -> int:
        """Calls in flight per run: the field, else ``$DAYDREAMING_LLM_CONCURRENCY``, else 16."""
        if self.concurrency is not None:
            return self.concurrency
        raw = os.environ.get(CONCURRENCY_ENV, "").strip()
        if not raw:
            return DEFAULT_CONCURRENCY
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{CONCURRENCY_ENV}={raw!r} is not an integer; unset it or fix the value") from None
        if value < 1:
            raise ConfigError(f"{CONCURRENCY_ENV}={raw!r} must be at least 1")
        return value

    def call_scope(self) -> CallScope | None:
        """The shared :class:`~.llm.scope.CallScope` of ``scope`` (``None`` when unscoped)."""
        if self.scope is None:
            return None
        from .llm.scope import call_scope

        return call_scope(self.scope, concurrency=self.effective_concurrency(), max_cost=self.max_cost)

    def call_slots(self) -> CallSlots:
        """Slots capping this run's calls in flight: the scope's (shared with overlapping runs)
        or this run's own."""
        from .llm.slots import CallSlots

        scope = self.call_scope()
        return scope.slots if scope is not None else CallSlots(self.effective_concurrency())

    def llm_config(self) -> LLMConfig:
        """The :class:`~.llm.routes.LLMConfig` of this resource (fields over the environment)."""
        from .llm.routes import LLMConfig

        overrides: dict[str, object] = {"max_concurrency": self.effective_concurrency()}
        for name, value in (("timeout_s", self.timeout_s), ("max_attempts", self.max_attempts),
                            ("max_cost", self.max_cost), ("base_url_override", self.base_url)):
            if value is not None:
                overrides[name] = value
        if self.offline:
            overrides["offline_fallback"] = True
        return LLMConfig.from_env(**overrides)

    def checks_routes(self) -> bool:
        """True when :meth:`client` is the router, whose routes pre-flight can check (a
        subclass with its own client, as tests use, routes its models itself)."""
        return type(self).client is LLMResource.client

    def client(self, models: Mapping[str, ModelInfo], data_root: str | os.PathLike[str] | None = None) -> LLMProvider:
        """A provider routing each model to its backend; build one per run (it binds an event loop).

        With ``data_root``, per-model quotas are shared with every process using that root
        (:func:`~.llm.quotas.quota_store_for`: files beside it, or Redis when
        ``$DAYDREAMING_QUOTA_REDIS_URL`` is set)."""
        from .llm.quotas import quota_store_for
        from .llm.router import build_llm_client

        quotas = quota_store_for(data_root) if data_root is not None else None
        return build_llm_client(models, self.llm_config(), scope=self.call_scope(), quotas=quotas)
