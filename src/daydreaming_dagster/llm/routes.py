"""Which route each catalog model takes, decided without creating a client (no SDK import).

One function, :func:`plan_route`, answers "where do this model's calls go, and can they go
there now?" for the router (which then builds the client), the pre-flight check and
``daydream run --check``. The rules, in order:

1. provider ``offline`` -> the offline provider (synthetic text, by choice);
2. ``DAYDREAMING_LLM_BASE_URL`` (or ``LLMConfig.base_url_override``) set -> every other model
   goes to that endpoint (key ``DAYDREAMING_LLM_API_KEY``, optional);
3. provider ``openrouter`` or ``openai`` -> that API (key ``OPENROUTER_API_KEY`` /
   ``OPENAI_API_KEY``); a provider named in ``LLMConfig.endpoints`` -> that endpoint;
4. any other provider whose ``model`` is an OpenRouter slug (``maker/model[:variant]``, e.g.
   provider ``google`` with ``google/gemini-2.5-flash``, as the established DayDreaming catalogs
   name the model's maker) -> OpenRouter;
5. anything else has no route.

A real route without its key, or no route at all, is a *problem* (the fix names the variable
to set) unless synthetic text was asked for (``--offline`` / ``DAYDREAMING_OFFLINE=1``,
``LLMConfig.offline_fallback``): then the offline provider stands in and results record the
provider they were meant for (``requested_provider``). Synthetic text is never silent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..catalog_types import ModelInfo
from ..errors import ConfigError
from .offline import OFFLINE_PROVIDER_NAME

if TYPE_CHECKING:
    from .openai_compatible import RetryPolicy

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "DAYDREAMING_LLM_BASE_URL"
API_KEY_ENV = "DAYDREAMING_LLM_API_KEY"
OPENROUTER_BASE_URL_ENV = "DAYDREAMING_OPENROUTER_BASE_URL"
OFFLINE_ENV = "DAYDREAMING_OFFLINE"
OVERRIDE_PROVIDER_NAME = "endpoint"
OPENROUTER_ROUTE = "openrouter"
OPENAI_ROUTE = "openai"

OPENROUTER_SLUG = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?$")
"""An OpenRouter model slug: ``maker/model`` with an optional ``:variant`` (``:free``...)."""

_TRUE = {"1", "true", "yes", "on"}


def is_openrouter_slug(model: str) -> bool:
    """True when ``model`` looks like an OpenRouter model slug (``maker/model[:variant]``)."""
    return bool(OPENROUTER_SLUG.fullmatch(model.strip()))


def offline_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``DAYDREAMING_OFFLINE`` asks for synthetic text for models without a route."""
    env = os.environ if environ is None else environ
    return (env.get(OFFLINE_ENV) or "").strip().lower() in _TRUE


class EndpointConfig(BaseModel):
    """An OpenAI-compatible endpoint a provider name maps to (e.g. ``vllm`` -> a local server)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="API base URL, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the key (None: no key needed)."
    )
    requests_per_minute: float | None = Field(
        default=None, description="Default per-model rate for this endpoint's models."
    )
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


class LLMConfig(BaseModel):
    """Settings of the model client layer (all optional; defaults suit OpenRouter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    openrouter_base_url: str = OPENROUTER_BASE_URL
    openrouter_api_key_env: str = "OPENROUTER_API_KEY"
    openai_base_url: str = OPENAI_BASE_URL
    openai_api_key_env: str = "OPENAI_API_KEY"
    endpoints: dict[str, EndpointConfig] = Field(
        default_factory=dict, description="Provider name -> endpoint, for self-hosted servers."
    )
    base_url_override: str | None = Field(
        default=None,
        description=f"Send every non-offline model here (default: ${BASE_URL_ENV}).",
    )
    max_concurrency: int | None = Field(
        default=32, ge=1, description="Requests in flight at once across all models."
    )
    default_requests_per_minute: float | None = Field(
        default=None, gt=0, description="Per-model rate when nothing more specific is set."
    )
    provider_requests_per_minute: dict[str, float] = Field(
        default_factory=dict, description="Provider name -> per-model rate for its models."
    )
    model_requests_per_minute: dict[str, float] = Field(
        default_factory=dict, description="Model id -> rate (wins over the catalog's column)."
    )
    default_tokens_per_minute: float | None = Field(
        default=None, gt=0, description="Per-model token quota when nothing more specific is set."
    )
    model_tokens_per_minute: dict[str, float] = Field(
        default_factory=dict, description="Model id -> token quota (wins over the catalog's column)."
    )
    timeout_s: float = Field(default=300.0, gt=0, description="Per-attempt timeout.")
    max_attempts: int = Field(default=6, ge=1, description="Attempts per call, first included.")
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    backoff_jitter_s: float = Field(default=1.0, ge=0)
    retry_after_cap_s: float = Field(default=120.0, ge=0)
    max_cost: float | None = Field(default=None, ge=0, description="Budget in USD per client.")
    offline_fallback: bool = Field(
        default=False,
        description=f"Explicit opt-in (--offline, {OFFLINE_ENV}=1): models without a usable route "
        "get synthetic text from the offline provider instead of stopping the run.",
    )
    send_stage_headers: bool = True

    def retry_policy(self) -> RetryPolicy:
        """The :class:`RetryPolicy` these settings describe."""
        from .openai_compatible import RetryPolicy

        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            jitter_s=self.backoff_jitter_s,
            retry_after_cap_s=self.retry_after_cap_s,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> LLMConfig:
        """Settings from ``DAYDREAMING_LLM_*`` variables (``CONCURRENCY``, ``RPM``, ``TPM``, ``TIMEOUT``,
        ``MAX_ATTEMPTS``, ``MAX_COST``), ``DAYDREAMING_OPENROUTER_BASE_URL`` and
        ``DAYDREAMING_OFFLINE``, then ``overrides``. A malformed value is a ConfigError."""
        env = os.environ if environ is None else environ
        names = {
            "DAYDREAMING_LLM_CONCURRENCY": ("max_concurrency", int),
            "DAYDREAMING_LLM_RPM": ("default_requests_per_minute", float),
            "DAYDREAMING_LLM_TPM": ("default_tokens_per_minute", float),
            "DAYDREAMING_LLM_TIMEOUT": ("timeout_s", float),
            "DAYDREAMING_LLM_MAX_ATTEMPTS": ("max_attempts", int),
            "DAYDREAMING_LLM_MAX_COST": ("max_cost", float),
        }
        values: dict[str, object] = {}
        for var, (field_name, kind) in names.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[field_name] = kind(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"{var}={raw!r} is not a valid {kind.__name__}; unset it or fix the value"
                ) from exc
        if env.get(OPENROUTER_BASE_URL_ENV):
            values["openrouter_base_url"] = env[OPENROUTER_BASE_URL_ENV]
        if offline_requested(env):
            values["offline_fallback"] = True
        values.update(overrides)
        return cls(**values)


RouteKind = Literal["offline", "openrouter", "openai", "endpoint", "none"]


@dataclass(frozen=True)
class RoutePlan:
    """Where one catalog model's calls go, and whether they can go there now."""

    model_id: str
    """Catalog id (``llm_models.csv`` ``id``)."""
    provider: str
    """The catalog's ``provider`` column."""
    route: str
    """Route name: ``offline``, ``openrouter``, ``openai``, a configured endpoint's provider
    name, ``endpoint`` (the base-URL override) or the provider itself when it has no route."""
    kind: RouteKind
    base_url: str | None
    """Endpoint base URL (``None`` offline or without a route)."""
    key_env: str | None = None
    """Variable holding the key (``None``: none needed)."""
    key: str | None = None
    """The key found in the environment (never printed)."""
    reason: str = ""
    """Why this route, in words (for ``--check``)."""
    problem: str | None = None
    """Why the route cannot be used now (missing key, no endpoint), with the fix."""
    offline_stand_in: bool = False
    """The offline provider serves this real model, because synthetic text was asked for."""
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"

    @property
    def served_by(self) -> str:
        """Name of the provider that answers: ``offline`` when it stands in, else the route."""
        return OFFLINE_PROVIDER_NAME if self.offline_stand_in or self.kind == "offline" else self.route

    @property
    def usable(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        """One line for ``daydream run --check``."""
        target = self.base_url or ("synthetic text" if self.kind == "offline" else "-")
        line = f"{self.model_id} -> {self.served_by} ({target}; {self.reason})"
        if self.offline_stand_in:
            line += f"; SYNTHETIC text instead of {self.route} because offline was requested"
        if self.problem:
            line += f"; PROBLEM: {self.problem}"
        return line


def plan_route(
    info: ModelInfo, config: LLMConfig | None = None, environ: Mapping[str, str] | None = None
) -> RoutePlan:
    """The :class:`RoutePlan` of one catalog model under ``config`` and ``environ``
    (default ``os.environ``). Never raises for a missing key: that is the plan's ``problem``."""
    cfg = config or LLMConfig.from_env(environ)
    env = os.environ if environ is None else environ
    provider = info.provider
    if provider == OFFLINE_PROVIDER_NAME:
        return RoutePlan(info.id, provider, OFFLINE_PROVIDER_NAME, "offline", None,
                         reason="the catalog names the offline provider")
    override = cfg.base_url_override or env.get(BASE_URL_ENV) or None
    if override:
        return RoutePlan(info.id, provider, OVERRIDE_PROVIDER_NAME, "endpoint", override,
                         key_env=API_KEY_ENV, key=env.get(API_KEY_ENV) or None,
                         reason=f"{BASE_URL_ENV} sends every non-offline model there")
    if provider in cfg.endpoints:
        endpoint = cfg.endpoints[provider]
        key = env.get(endpoint.api_key_env) if endpoint.api_key_env else None
        plan = RoutePlan(info.id, provider, provider, "endpoint", endpoint.base_url,
                         key_env=endpoint.api_key_env, key=key or None,
                         reason=f"endpoint configured for provider '{provider}'",
                         max_tokens_param=endpoint.max_tokens_param)
        if endpoint.api_key_env and not key:
            return _unusable(plan, cfg, f"{endpoint.api_key_env} is not set; export {endpoint.api_key_env}=...")
        return plan
    if provider == OPENAI_ROUTE:
        plan = RoutePlan(info.id, provider, OPENAI_ROUTE, "openai", cfg.openai_base_url,
                         key_env=cfg.openai_api_key_env, key=env.get(cfg.openai_api_key_env) or None,
                         reason="provider 'openai'", max_tokens_param="max_completion_tokens")
    elif provider == OPENROUTER_ROUTE or is_openrouter_slug(info.model):
        reason = (
            "provider 'openrouter'" if provider == OPENROUTER_ROUTE
            else f"provider '{provider}' is not a configured route and model '{info.model}' is an "
            "OpenRouter slug"
        )
        plan = RoutePlan(info.id, provider, OPENROUTER_ROUTE, "openrouter", cfg.openrouter_base_url,
                         key_env=cfg.openrouter_api_key_env,
                         key=env.get(cfg.openrouter_api_key_env) or None, reason=reason)
    else:
        plan = RoutePlan(info.id, provider, provider, "none", None,
                         reason=f"provider '{provider}' is not a configured route")
        return _unusable(
            plan, cfg,
            f"provider '{provider}' has no route and model '{info.model}' is not an OpenRouter slug "
            f"(maker/model); set provider to openrouter with an OpenRouter model name, configure an "
            f"endpoint for '{provider}', or set {BASE_URL_ENV}",
        )
    if not plan.key:
        return _unusable(plan, cfg, f"{plan.key_env} is not set; export {plan.key_env}=... "
                                    "(or run with --offline for synthetic text)")
    return plan


def _unusable(plan: RoutePlan, cfg: LLMConfig, problem: str) -> RoutePlan:
    from dataclasses import replace

    if cfg.offline_fallback:
        return replace(plan, offline_stand_in=True, reason=f"{plan.reason}; {problem.split(';')[0]}")
    return replace(plan, problem=problem)


def plan_routes(
    models: Mapping[str, ModelInfo], config: LLMConfig | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, RoutePlan]:
    """:func:`plan_route` for every model of ``models`` (catalog order)."""
    cfg = config or LLMConfig.from_env(environ)
    return {model_id: plan_route(info, cfg, environ) for model_id, info in models.items()}
