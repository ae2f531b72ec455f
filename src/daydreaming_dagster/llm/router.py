"""Routing: one :class:`LLMProvider` that sends each request to the route of its model.

``build_llm_client(models, config)`` returns a :class:`RoutingProvider`. A request's
``model_id`` names a row of ``llm_models.csv`` (:class:`~..catalog_types.ModelInfo`); where its
calls go is decided by :func:`.routes.plan_route` (the same function the pre-flight check and
``daydream run --check`` use): the offline provider for ``offline`` models, the base-URL
override, OpenRouter, OpenAI, a configured endpoint, or OpenRouter for a maker-named provider
whose model is an OpenRouter slug.

**No key, no route**: a model whose route cannot be used raises a
:class:`~..errors.ConfigError` naming the variable to set, unless synthetic text was asked for
(``LLMConfig.offline_fallback``: ``--offline`` / ``DAYDREAMING_OFFLINE=1``). Then the offline
provider answers, one WARNING per route says so, and results carry ``provider="offline"`` and
``requested_provider`` = the route they were meant for, so the data layer never reuses them
once the real route exists.

The router also owns the shared :class:`~.limits.RequestLimits` (global concurrency cap and
per-model requests and tokens per minute, scheduled in a :class:`~.quotas.QuotaStore` that
processes sharing a data root share) and the :class:`~.budget.CostLedger` (``max_cost``), or takes
them from a :class:`~.scope.CallScope` when several runs of one invocation overlap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Mapping
from typing import Literal

from ..catalog_types import ModelInfo
from ..errors import ConfigError
from .base import GenerationRequest, GenerationResult, LLMProvider
from .budget import CostLedger
from .limits import RequestLimits
from .offline import OfflineProvider
from .quotas import QuotaStore
from .routes import (
    API_KEY_ENV,
    BASE_URL_ENV,
    OFFLINE_ENV,
    OPENROUTER_ROUTE,
    OVERRIDE_PROVIDER_NAME,
    EndpointConfig,
    LLMConfig,
    RoutePlan,
    plan_route,
)
from .scope import CallScope

logger = logging.getLogger(__name__)

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "OFFLINE_ENV",
    "OVERRIDE_PROVIDER_NAME",
    "EndpointConfig",
    "LLMConfig",
    "Route",
    "RoutingProvider",
    "build_llm_client",
]

# Local servers (vLLM, Ollama, llama.cpp, the mock) accept any key; the SDK wants a non-empty one.
_PLACEHOLDER_KEY = "no-key-needed"

Route = RoutePlan
"""Where one model's requests go (see :class:`.routes.RoutePlan`)."""


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
        quotas: QuotaStore | None = None,
    ) -> None:
        self.models = dict(models)
        self.config = config
        self._environ = dict(environ)
        self._override = config.base_url_override or self._environ.get(BASE_URL_ENV) or None
        if scope is None:
            self.ledger = CostLedger(config.max_cost)
            self.limits = RequestLimits(config.max_concurrency, self._rpm_for, tpm_for=self._tpm_for, store=quotas)
        else:  # clients of overlapping runs share one budget and one schedule per model;
            # the scope's call slots (taken by the raw batches, by priority) are the cap.
            self.ledger = scope.ledger
            self.limits = scope.limits(lambda: RequestLimits(None, self._rpm_for, tpm_for=self._tpm_for, store=quotas))
        self._offline = OfflineProvider()
        self._providers: dict[str, LLMProvider] = {}
        self._routes: dict[str, RoutePlan] = {}
        self._warned: set[str] = set()
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

    def _tpm_for(self, model_id: str) -> float | None:
        cfg = self.config
        if model_id in cfg.model_tokens_per_minute:
            return cfg.model_tokens_per_minute[model_id]
        info = self.models.get(model_id)
        # As for rates: the catalog's quotas describe the real provider, not an override endpoint.
        if info is not None and info.tokens_per_minute and not self._override:
            return info.tokens_per_minute
        return cfg.default_tokens_per_minute

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

    def route(self, model_id: str) -> RoutePlan:
        """The route of a catalog model (planned once per model, then cached); the HTTP client
        of its route is created on first use and shared by every model on that route."""
        with self._lock:
            if model_id not in self._routes:
                plan = plan_route(self.model_info(model_id), self.config, self._environ)
                if plan.problem is not None:
                    raise ConfigError(f"model '{model_id}' cannot be called: {plan.problem}")
                if plan.offline_stand_in and plan.route not in self._warned:
                    self._warned.add(plan.route)
                    logger.warning(
                        "%s: models routed to '%s' get SYNTHETIC text from the offline provider, not a "
                        "language model, because offline was requested (--offline / %s=1)",
                        plan.reason, plan.route, OFFLINE_ENV,
                    )
                if plan.served_by != "offline" and plan.route not in self._providers:
                    self._providers[plan.route] = self._http_client(plan)
                self._routes[model_id] = plan
            return self._routes[model_id]

    def served_by(self, model_id: str) -> str | None:
        """The provider answering ``model_id`` now (``offline`` when synthetic), without raising:
        ``None`` for an unknown model."""
        info = self.models.get(model_id)
        if info is None:
            return None
        return plan_route(info, self.config, self._environ).served_by

    def _http_client(self, plan: RoutePlan) -> LLMProvider:
        # Imported here: the openai SDK takes about a second to import and a cohort served
        # offline (the demo) never needs it.
        from .openai_compatible import OpenAICompatibleProvider

        assert plan.base_url is not None  # a usable non-offline route has an endpoint
        is_openrouter = plan.route == OPENROUTER_ROUTE
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = plan.max_tokens_param
        client = OpenAICompatibleProvider(
            name=plan.route,
            base_url=plan.base_url,
            api_key=plan.key or _PLACEHOLDER_KEY,
            api_key_env=plan.key_env,
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
        return client

    # -- calls -----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Serve ``request`` by its model's route.

        Raises:
            ConfigError: unknown model id, or no usable route (a key to set) without the
                offline opt-in.
            BudgetExceeded: ``max_cost`` is spent (checked before the call starts).
            ProviderError: the provider failed for good.
        """
        route = self.route(request.model_id)
        provider = None if route.served_by == "offline" else self._providers[route.route]
        if provider is None:  # offline, by choice or by explicit opt-in
            self.ledger.ensure_can_start(request)
            result = await self._offline.generate(request)
            self.ledger.record(request, result)
        else:
            # The HTTP provider checks the budget after its concurrency wait and records the cost.
            result = await provider.generate(request)
        return dataclasses.replace(result, requested_provider=route.route)

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
    quotas: QuotaStore | None = None,
) -> RoutingProvider:
    """The model client for a run: routes by catalog provider, with limits and a budget.

    Args:
        models: catalog id -> :class:`ModelInfo` (``llm_models.csv``).
        config: :class:`LLMConfig` (default: ``LLMConfig.from_env(environ)``).
        environ: where keys and ``DAYDREAMING_LLM_BASE_URL`` are read (default ``os.environ``,
            read once, now).
        scope: share the budget and rate limits of this :class:`~.scope.CallScope` (runs of
            one invocation overlapping in this process) instead of owning them.
        quotas: where the per-model request and token quotas are scheduled (default: this
            process's memory; :func:`~.quotas.quota_store_for` shares them across processes).

    Returns:
        A :class:`RoutingProvider`; ``.ledger.summary()`` gives costs per stage and in total.
    """
    return RoutingProvider(
        models, config or LLMConfig.from_env(environ), os.environ if environ is None else environ, scope, quotas
    )
