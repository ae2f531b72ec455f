"""Provider for any OpenAI-compatible chat-completions endpoint, on the official async SDK.

OpenRouter (the default), OpenAI, vLLM, Ollama, llama.cpp server and the project's mock
server all speak this protocol; only the base URL and the key differ.

Retries are ours, not the SDK's (``max_retries=0``): tenacity retries 408/409/429/5xx,
timeouts and connection errors with exponential backoff and jitter, honouring ``Retry-After``
(capped); other 4xx fail at once with an error that says what to fix. Each *attempt* takes a
concurrency slot, a rate-limit token and its estimated tokens of the model's token quota from
:class:`~.limits.RequestLimits` (corrected by the usage the answer reports), so backoff sleeps
free the slot for others. The budget is checked once, right before the first attempt is sent.

The SDK's HTTP client belongs to the event loop it was first used in, so one client is made
per running loop (see :mod:`.limits` for why a process may have several loops).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import random
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import openai
from openai import AsyncOpenAI
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ..errors import ProviderError
from .base import GenerationRequest, GenerationResult, LLMProvider, Usage, ensure_not_stopped
from .budget import CostLedger
from .limits import RequestLimits
from .routes import OPENAI_BASE_URL, OPENROUTER_BASE_URL  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)



@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~30 ms; one context serves every client of the process.
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
STAGE_HEADER = "X-Daydream-Stage"
REPLICATE_HEADER = "X-Daydream-Replicate"
# Statuses worth another try: request timeout, conflict, too early, rate limit, server errors.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
# Finish reasons some servers spell differently from OpenAI's ``length``.
_FINISH_REASON_ALIASES = {"max_tokens": "length", "MAX_TOKENS": "length", "model_length": "length"}
_BODY_EXCERPT = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are retried."""

    max_attempts: int = 6
    """Attempts in total, the first included (1: never retry)."""
    backoff_initial_s: float = 1.0
    """First backoff wait when the server gives no ``Retry-After``; doubles each attempt."""
    backoff_max_s: float = 60.0
    """Longest backoff wait."""
    jitter_s: float = 1.0
    """Random extra wait in [0, jitter_s) added to a backoff, so workers do not retry in step."""
    retry_after_cap_s: float = 120.0
    """Longest ``Retry-After`` honoured; a larger value waits this long instead."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")


class _AttemptFailed(ProviderError):
    """One failed attempt; ``retry_after`` is the server's requested wait, if any."""

    def __init__(
        self, message: str, *, status: int | None, retryable: bool, retry_after: float | None
    ) -> None:
        super().__init__(message, status=status, retryable=retryable)
        self.retry_after = retry_after


def parse_retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, or ``Retry-After`` as seconds
    (decimals accepted) or an HTTP date. ``None`` when absent or unreadable."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def warm_up() -> None:
    """Import what the SDK otherwise imports during the first call (its chat resources and
    response types, about half a second): a long-lived process calls this at start-up, off
    the critical path, so the first model call does not stall the event loop."""
    from openai.types.chat import ChatCompletion  # noqa: F401 - imported for its side effect

    AsyncOpenAI(api_key="warm-up", base_url="http://127.0.0.1:9/v1").chat.completions  # noqa: B018


def _connection_failure(exc: BaseException) -> OSError | None:
    """The operating-system connection error (refused, unresolvable...) behind ``exc``, if any:
    the person reading the error needs "cannot reach", not "timed out after 300 s"."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _body_excerpt(exc: openai.APIStatusError) -> str:
    try:
        text = exc.response.text
    except Exception:  # body already consumed or undecodable: fall back to the parsed one
        text = str(exc.body)
    text = " ".join(text.split())
    return text[:_BODY_EXCERPT] + ("..." if len(text) > _BODY_EXCERPT else "")


class OpenAICompatibleProvider(LLMProvider):
    """Chat completions from one OpenAI-compatible endpoint.

    Args:
        name: provider name recorded in results (``openrouter``, ``openai``, ``vllm``...).
        base_url: the API base URL, e.g. ``https://openrouter.ai/api/v1``.
        api_key: the key (local servers accept any non-empty string).
        api_key_env: the environment variable the key comes from, named in 401 errors.
        timeout_s: per-attempt timeout (connect, read, write each).
        retry: the :class:`RetryPolicy`.
        limits: shared concurrency and rate limits (``None``: none).
        ledger: cost ledger whose budget is checked before the first attempt and which records
            each result's cost (``None``: none).
        prices: model id -> (input, output) USD per million tokens, for cost when the API
            reports none.
        max_tokens_param: request field for the token cap (OpenAI's newer models want
            ``max_completion_tokens``).
        request_usage_cost: ask for OpenRouter's usage accounting (``usage.include``).
        send_stage_headers: send ``X-Daydream-Stage``/``X-Daydream-Replicate`` (the mock server
            shapes its answer by them; real APIs ignore unknown headers).
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str,
        api_key_env: str | None = None,
        timeout_s: float = 300.0,
        retry: RetryPolicy | None = None,
        limits: RequestLimits | None = None,
        ledger: CostLedger | None = None,
        prices: dict[str, tuple[float | None, float | None]] | None = None,
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        request_usage_cost: bool = False,
        send_stage_headers: bool = True,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must be non-empty (use any placeholder for local servers)")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.limits = limits
        self.ledger = ledger
        self.prices = dict(prices or {})
        self.max_tokens_param = max_tokens_param
        self.request_usage_cost = request_usage_cost
        self.send_stage_headers = send_stage_headers
        self.default_headers = dict(default_headers or {})
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatibleProvider(name={self.name!r}, base_url={self.base_url!r})"

    # -- clients per event loop ------------------------------------------------------------

    def _client(self) -> AsyncOpenAI:
        """This event loop's SDK client (created on first use).

        It sends over the SDK's aiohttp transport (``DefaultAioHttpClient``, the SDK's choice
        "for improved concurrency performance"): its C HTTP parser and connection pool cost
        about a third less event-loop time per call than the default transport, which is what
        bounds calls per second when answers come back fast.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = self._clients[loop] = AsyncOpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    timeout=self.timeout_s,
                    max_retries=0,  # tenacity retries, with our policy and bookkeeping
                    default_headers=self.default_headers or None,
                    http_client=openai.DefaultAioHttpClient(verify=_tls_context()),
                )
            return client

    async def aclose(self) -> None:
        """Close the HTTP clients of the running loop (clients of other loops are dropped)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
            self._clients.clear()
        if client is not None:
            await client.close()

    # -- one call ----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Run ``request`` with retries.

        Raises:
            ProviderError: the call failed for good; besides ``status`` and ``retryable`` it
                carries ``attempts`` and ``retry_wait_s``.
            BudgetExceeded: the ledger's budget is spent (checked before the first attempt).
        """
        started = time.perf_counter()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            before_sleep=self._log_retry,
            sleep=asyncio.sleep,
            reraise=True,
        )
        state: RetryCallState | None = None
        try:
            async for attempt in retrying:
                state = attempt.retry_state
                with attempt:
                    response = await self._attempt(request, first=state.attempt_number == 1)
        except _AttemptFailed as exc:
            attempts = state.attempt_number if state else 1
            waited = state.idle_for if state else 0.0
            message = str(exc)
            if exc.retryable:
                message += f" (gave up after {attempts} attempts, {waited:.1f} s of waiting)"
            error = ProviderError(message, status=exc.status, retryable=exc.retryable)
            # Bookkeeping for the caller's failure log (ProviderError has no fields for it).
            error.attempts = attempts  # type: ignore[attr-defined]
            error.retry_wait_s = waited  # type: ignore[attr-defined]
            raise error from exc
        assert state is not None
        result = self._result(request, response, state, time.perf_counter() - started)
        if self.ledger is not None:
            self.ledger.record(request, result)
        return result

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            wait = min(retry_after, self.retry.retry_after_cap_s)
            # A little jitter so a 429 storm's retries do not arrive in one burst again.
            return wait + random.uniform(0.0, min(1.0, 0.1 * wait))
        exponent = max(0, state.attempt_number - 1)
        backoff = min(self.retry.backoff_max_s, self.retry.backoff_initial_s * 2**exponent)
        return backoff + random.uniform(0.0, self.retry.jitter_s)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info(
            "%s: attempt %d failed (%s); retrying in %.2f s",
            self.name,
            state.attempt_number,
            exc,
            wait,
        )

    async def _attempt(self, request: GenerationRequest, *, first: bool) -> Any:
        limits = self.limits
        if limits is None:
            return await self._send(request, first=first)
        tokens = (limits.estimate_tokens(request.model_id, request.prompt, request.max_tokens)
                  if limits.tokens_per_minute(request.model_id) else 0)
        async with limits.slot(request.model_id, tokens=tokens) as ticket:
            try:
                response = await self._send(request, first=first)
            except _AttemptFailed as exc:
                if exc.status == 429 and exc.retry_after:
                    limits.hold_off(request.model_id, min(exc.retry_after, self.retry.retry_after_cap_s))
                raise
            usage = getattr(response, "usage", None)
            ticket.settle(getattr(usage, "total_tokens", None))
            limits.record_completion(request.model_id, getattr(usage, "completion_tokens", None))
            return response

    async def _send(self, request: GenerationRequest, *, first: bool) -> Any:
        # Checked after waiting for a slot and a rate-limit token: after a stop request (Ctrl-C)
        # a queued call must not go out.
        ensure_not_stopped(request)
        if first and self.ledger is not None:
            # Checked after waiting for a slot: a call queued while the budget ran out
            # must not start.
            self.ledger.ensure_can_start(request)
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs[self.max_tokens_param] = request.max_tokens
        if self.send_stage_headers:
            kwargs["extra_headers"] = {
                STAGE_HEADER: request.stage,
                REPLICATE_HEADER: str(request.replicate),
            }
        if self.request_usage_cost:
            kwargs["extra_body"] = {"usage": {"include": True}}
        try:
            response = await self._client().chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise self._status_error(request, exc) from exc
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise self._connection_error(request, exc) from exc
        except openai.OpenAIError as exc:
            raise _AttemptFailed(
                f"{self.name}: unexpected response for model '{request.model}': {exc}",
                status=None,
                retryable=False,
                retry_after=None,
            ) from exc
        self._check_embedded_error(request, response)
        return response

    def _connection_error(self, request: GenerationRequest, exc: openai.APIConnectionError) -> _AttemptFailed:
        """A timeout or an unreachable endpoint (both retryable), told apart by the cause: the
        SDK's aiohttp transport reports a refused connection as a connect *timeout*."""
        refused = _connection_failure(exc)
        if isinstance(exc, openai.APITimeoutError) and refused is None:
            message = (f"{self.name}: request for model '{request.model}' timed out after "
                       f"{self.timeout_s:g} s ({self.base_url})")
        else:
            message = f"{self.name}: cannot reach {self.base_url} ({refused or exc.__cause__ or exc})"
        return _AttemptFailed(message, status=None, retryable=True, retry_after=None)

    def _status_error(
        self, request: GenerationRequest, exc: openai.APIStatusError
    ) -> _AttemptFailed:
        status = exc.status_code
        body = _body_excerpt(exc)
        where = f"{self.name} ({self.base_url})"
        model = f"model '{request.model}' (catalog id '{request.model_id}')"
        if status == 401:
            key = self.api_key_env or "the provider's API key variable"
            message = (
                f"{where} rejected the API key (HTTP 401) calling {model}: set {key} to a "
                f"valid key, e.g. `export {key}=...`. Response: {body}"
            )
        elif status == 402:
            message = f"{where} refused {model} for lack of credits (HTTP 402): top up the account. Response: {body}"
        elif status == 403:
            message = f"{where} denied access to {model} (HTTP 403): check the key's permissions or the model's availability. Response: {body}"
        elif status == 404:
            message = (
                f"{where} does not know {model} (HTTP 404): fix the `model` column of "
                f"llm_models.csv for '{request.model_id}' (and the base URL if it is wrong). Response: {body}"
            )
        elif status in (400, 413, 422):
            message = (
                f"{where} rejected the request for {model} (HTTP {status}): check max_tokens "
                f"({request.max_tokens}), temperature ({request.temperature}) and the prompt "
                f"length for this model. Response: {body}"
            )
        else:
            message = f"{where} answered HTTP {status} for {model}. Response: {body}"
        return _AttemptFailed(
            message,
            status=status,
            retryable=status in RETRYABLE_STATUSES,
            retry_after=parse_retry_after(exc.response.headers)
            if status in RETRYABLE_STATUSES
            else None,
        )

    def _check_embedded_error(self, request: GenerationRequest, response: Any) -> None:
        # OpenRouter can answer HTTP 200 with {"error": {...}} and no choices when the
        # upstream model fails mid-way; treat it like the status it names.
        if getattr(response, "choices", None):
            return
        extra = getattr(response, "model_extra", None) or {}
        error = extra.get("error") if isinstance(extra, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) else None
        detail = error.get("message") if isinstance(error, dict) else None
        raise _AttemptFailed(
            f"{self.name}: response for model '{request.model}' has no choices"
            + (f" (error {status}: {detail})" if error else ""),
            status=status,
            retryable=status is None or status in RETRYABLE_STATUSES,
            retry_after=None,
        )

    # -- result --------------------------------------------------------------------------------

    def _usage(self, request: GenerationRequest, response: Any) -> Usage:
        raw = getattr(response, "usage", None)
        if raw is None:
            return Usage()
        prompt_tokens = getattr(raw, "prompt_tokens", None)
        completion_tokens = getattr(raw, "completion_tokens", None)
        total_tokens = getattr(raw, "total_tokens", None)
        reported = getattr(raw, "cost", None)  # OpenRouter's usage accounting
        if isinstance(reported, int | float):
            return Usage(
                prompt_tokens, completion_tokens, total_tokens, float(reported), "provider"
            )
        in_price, out_price = self.prices.get(request.model_id, (None, None))
        if (in_price is not None or out_price is not None) and (
            prompt_tokens is not None or completion_tokens is not None
        ):
            cost = (
                (prompt_tokens or 0) * (in_price or 0.0)
                + (completion_tokens or 0) * (out_price or 0.0)
            ) / 1_000_000
            return Usage(prompt_tokens, completion_tokens, total_tokens, cost, "price_table")
        return Usage(prompt_tokens, completion_tokens, total_tokens, None, None)

    def _result(
        self, request: GenerationRequest, response: Any, state: RetryCallState, duration_s: float
    ) -> GenerationResult:
        choice = response.choices[0]
        message = choice.message
        reasoning = getattr(message, "reasoning", None) or getattr(
            message, "reasoning_content", None
        )
        finish_reason = choice.finish_reason
        finish_reason = _FINISH_REASON_ALIASES.get(finish_reason, finish_reason)
        return GenerationResult(
            text=message.content or "",
            finish_reason=finish_reason,
            provider=self.name,
            model=getattr(response, "model", None) or request.model,
            usage=self._usage(request, response),
            reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
            attempts=state.attempt_number,
            retry_wait_s=state.idle_for,
            duration_s=duration_s,
            response_id=getattr(response, "id", None),
            endpoint=self.base_url,
        )
