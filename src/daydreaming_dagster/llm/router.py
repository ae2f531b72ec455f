"""Routing: one :class:`LLMProvider` that sends each request to the provider of its model.

``build_llm_client(models, config)`` returns a :class:`RoutingProvider`. A request's
``model_id`` names a row of ``llm_models.csv`` (:class:`~..catalog_types.ModelInfo`); its
``provider`` column picks the route:

- ``offline`` -> :class:`~.offline.OfflineProvider` (synthetic text, no network);
- ``openrouter`` -> OpenRouter (``OPENROUTER_API_KEY``);
- ``openai`` -> api.openai.com (``OPENAI_API_KEY``);
- any other name -> the endpoint configured for it in ``LLMConfig.endpoints``, else the
  endpoint of ``DAYDREAMING_LLM_BASE_URL`` (key ``DAYDREAMING_LLM_API_KEY``).

**Override**: when ``DAYDREAMING_LLM_BASE_URL`` (or ``LLMConfig.base_url_override``) is set,
*every* non-offline model goes to that endpoint, with ``DAYDREAMING_LLM_API_KEY`` as key (or a
placeholder, since local servers need none). That is how tests and benchmarks point the whole
pipeline at the mock server; results then carry ``provider="endpoint"`` and its ``endpoint`` URL.

**No key**: when a non-offline provider has no key and there is no override, the decision is
to serve its models with the offline provider and log one WARNING per provider saying so
(DESIGN §6: offline is the default only when no API key is configured). Such results carry
``provider="offline"`` and ``requested_provider`` = the catalog's provider, and the text itself
says it is synthetic, so nobody mistakes it for a model's answer. ``offline_fallback=False``
turns this into a :class:`~..errors.ConfigError` naming the variable to set.

The router also owns the shared :class:`~.limits.RequestLimits` (global concurrency cap and
per-model requests per minute) and the :class:`~.budget.CostLedger` (``max_cost``), or takes
them from a :class:`~.scope.CallScope` when several runs of one invocation overlap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..catalog_types import ModelInfo
from ..errors import ConfigError
from .base import GenerationRequest, GenerationResult, LLMProvider
from .budget import CostLedger
from .limits import RequestLimits
from .offline import OFFLINE_PROVIDER_NAME, OfflineProvider
from .openai_compatible import (
    OPENAI_BASE_URL,
    OPENROUTER_BASE_URL,
    OpenAICompatibleProvider,
    RetryPolicy,
)
from .scope import CallScope

logger = logging.getLogger(__name__)

BASE_URL_ENV = "DAYDREAMING_LLM_BASE_URL"
API_KEY_ENV = "DAYDREAMING_LLM_API_KEY"
OVERRIDE_PROVIDER_NAME = "endpoint"
# Local servers (vLLM, Ollama, llama.cpp, the mock) accept any key; the SDK wants a non-empty one.
_PLACEHOLDER_KEY = "no-key-needed"


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
    timeout_s: float = Field(default=300.0, gt=0, description="Per-attempt timeout.")
    max_attempts: int = Field(default=6, ge=1, description="Attempts per call, first included.")
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    backoff_jitter_s: float = Field(default=1.0, ge=0)
    retry_after_cap_s: float = Field(default=120.0, ge=0)
    max_cost: float | None = Field(default=None, ge=0, description="Budget in USD per client.")
    offline_fallback: bool = Field(
        default=True, description="Serve keyless providers' models offline (with a warning)."
    )
    send_stage_headers: bool = True

    def retry_policy(self) -> RetryPolicy:
        """The :class:`RetryPolicy` these settings describe."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            jitter_s=self.backoff_jitter_s,
            retry_after_cap_s=self.retry_after_cap_s,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> LLMConfig:
        """Settings from ``DAYDREAMING_LLM_*`` variables (``CONCURRENCY``, ``RPM``, ``TIMEOUT``,
        ``MAX_ATTEMPTS``, ``MAX_COST``), then ``overrides``. A malformed value is a ConfigError."""
        env = os.environ if environ is None else environ
        names = {
            "DAYDREAMING_LLM_CONCURRENCY": ("max_concurrency", int),
            "DAYDREAMING_LLM_RPM": ("default_requests_per_minute", float),
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
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Route:
    """Where one provider name's requests go."""

    provider: str
    """Catalog provider name (``openrouter``, ``offline``...)."""
    served_by: str
    """Name of the provider that serves it (``offline`` when falling back)."""
    base_url: str | None
    """Endpoint base URL (``None`` offline)."""
    fallback_reason: str | None = None
    """Why the offline provider stands in, when it does."""


class RoutingProvider(LLMProvider):
    """Routes each request by its model's catalog provider; enforces limits and budget.

    Build it with :func:`build_llm_client`. ``ledger`` holds per-stage and total costs.
    """

    name = "router"

    def __init__(
        self,
        models: Mapping[str, ModelInfo],
        config: LLMConfig,
        environ: Mapping[str, str],
        scope: CallScope | None = None,
    ) -> None:
        self.models = dict(models)
        self.config = config
        self._environ = dict(environ)
        self._override = config.base_url_override or self._environ.get(BASE_URL_ENV) or None
        if scope is None:
            self.ledger = CostLedger(config.max_cost)
            self.limits = RequestLimits(config.max_concurrency, self._rpm_for)
        else:  # clients of overlapping runs share one budget and one schedule per model;
            # the scope's call slots (taken by the raw batches, by priority) are the cap.
            self.ledger = scope.ledger
            self.limits = scope.limits(lambda: RequestLimits(None, self._rpm_for))
        self._offline = OfflineProvider()
        self._providers: dict[str, LLMProvider] = {}
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------------------

    def _rpm_for(self, model_id: str) -> float | None:
        cfg = self.config
        if model_id in cfg.model_requests_per_minute:
            return cfg.model_requests_per_minute[model_id]
        info = self.models.get(model_id)
        # The catalog's rates describe the real provider; with every model sent to one override
        # endpoint (a local server, the mock) they do not apply.
        if info is not None and info.requests_per_minute and not self._override:
            return info.requests_per_minute
        if info is not None:
            if info.provider in cfg.provider_requests_per_minute:
                return cfg.provider_requests_per_minute[info.provider]
            endpoint = cfg.endpoints.get(info.provider)
            if endpoint is not None and endpoint.requests_per_minute:
                return endpoint.requests_per_minute
        return cfg.default_requests_per_minute

    def _prices(self) -> dict[str, tuple[float | None, float | None]]:
        return {
            mid: (m.input_price_per_mtok, m.output_price_per_mtok) for mid, m in self.models.items()
        }

    def model_info(self, model_id: str) -> ModelInfo:
        """The catalog row of ``model_id``; ConfigError listing the known ids when unknown."""
        info = self.models.get(model_id)
        if info is None:
            known = ", ".join(sorted(self.models)) or "(none)"
            raise ConfigError(f"model id '{model_id}' is not in llm_models.csv; known ids: {known}")
        return info

    def route(self, provider: str) -> Route:
        """The route of a catalog provider name (resolved once, then cached)."""
        with self._lock:
            if provider not in self._routes:
                self._routes[provider], created = self._resolve(provider)
                if created is not None:
                    self._providers[provider] = created
            return self._routes[provider]

    def _resolve(self, provider: str) -> tuple[Route, LLMProvider | None]:
        cfg = self.config
        if provider == OFFLINE_PROVIDER_NAME:
            return Route(provider, OFFLINE_PROVIDER_NAME, None), None
        if self._override:
            key = self._environ.get(API_KEY_ENV) or _PLACEHOLDER_KEY
            return self._http_route(
                provider, OVERRIDE_PROVIDER_NAME, self._override, key, API_KEY_ENV
            )
        if provider == "openrouter":
            base_url, key_env = cfg.openrouter_base_url, cfg.openrouter_api_key_env
        elif provider == "openai":
            base_url, key_env = cfg.openai_base_url, cfg.openai_api_key_env
        elif provider in cfg.endpoints:
            endpoint = cfg.endpoints[provider]
            key = self._environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
            return self._http_route(
                provider,
                provider,
                endpoint.base_url,
                key or _PLACEHOLDER_KEY,
                endpoint.api_key_env,
                endpoint.max_tokens_param,
            )
        else:
            reason = (
                f"provider '{provider}' has no endpoint: add it to LLMConfig.endpoints or set "
                f"{BASE_URL_ENV}"
            )
            return self._fallback(provider, reason, hint=f"set {BASE_URL_ENV}")
        key = self._environ.get(key_env)
        if not key:
            reason = f"{key_env} is not set"
            return self._fallback(provider, reason, hint=f"export {key_env}=...")
        param: Literal["max_tokens", "max_completion_tokens"] = (
            "max_completion_tokens" if provider == "openai" else "max_tokens"
        )
        return self._http_route(provider, provider, base_url, key, key_env, param)

    def _http_route(
        self,
        provider: str,
        name: str,
        base_url: str,
        key: str,
        key_env: str | None,
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
    ) -> tuple[Route, LLMProvider]:
        is_openrouter = "openrouter.ai" in base_url
        client = OpenAICompatibleProvider(
            name=name,
            base_url=base_url,
            api_key=key,
            api_key_env=key_env,
            timeout_s=self.config.timeout_s,
            retry=self.config.retry_policy(),
            limits=self.limits,
            ledger=self.ledger,
            prices=self._prices(),
            max_tokens_param=max_tokens_param,
            request_usage_cost=is_openrouter,
            send_stage_headers=self.config.send_stage_headers,
            # OpenRouter's optional app attribution headers.
            default_headers={"X-Title": "DayDreaming"} if is_openrouter else None,
        )
        return Route(provider, name, client.base_url), client

    def _fallback(self, provider: str, reason: str, *, hint: str) -> tuple[Route, None]:
        if not self.config.offline_fallback:
            raise ConfigError(
                f"models of provider '{provider}' cannot be called: {reason}. Fix: {hint} "
                "(or allow the offline fallback)"
            )
        logger.warning(
            "%s; models of provider '%s' will get SYNTHETIC text from the offline provider, "
            "not a language model (%s to call the real API)",
            reason,
            provider,
            hint,
        )
        return Route(provider, OFFLINE_PROVIDER_NAME, None, fallback_reason=reason), None

    # -- calls -----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Serve ``request`` by its model's route.

        Raises:
            ConfigError: unknown model id, or no key while the offline fallback is off.
            BudgetExceeded: ``max_cost`` is spent (checked before the call starts).
            ProviderError: the provider failed for good.
        """
        info = self.model_info(request.model_id)
        route = self.route(info.provider)
        provider = self._providers.get(info.provider)
        if provider is None:  # offline, native or fallback
            self.ledger.ensure_can_start(request)
            result = await self._offline.generate(request)
            self.ledger.record(request, result)
        else:
            # The HTTP provider checks the budget after its concurrency wait and records the cost.
            result = await provider.generate(request)
        return dataclasses.replace(result, requested_provider=route.provider)

    async def aclose(self) -> None:
        """Close every HTTP client this router created (in the running loop)."""
        for provider in list(self._providers.values()):
            await provider.aclose()


def build_llm_client(
    models: Mapping[str, ModelInfo],
    config: LLMConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    scope: CallScope | None = None,
) -> RoutingProvider:
    """The model client for a run: routes by catalog provider, with limits and a budget.

    Args:
        models: catalog id -> :class:`ModelInfo` (``llm_models.csv``).
        config: :class:`LLMConfig` (default: ``LLMConfig()``).
        environ: where keys and ``DAYDREAMING_LLM_BASE_URL`` are read (default ``os.environ``,
            read once, now).
        scope: share the budget and rate limits of this :class:`~.scope.CallScope` (runs of
            one invocation overlapping in this process) instead of owning them.

    Returns:
        A :class:`RoutingProvider`; ``.ledger.summary()`` gives costs per stage and in total.
    """
    return RoutingProvider(
        models, config or LLMConfig(), os.environ if environ is None else environ, scope
    )
