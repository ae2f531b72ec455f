"""Raw phase: the model call (or the copy), persisted *before* validation (seed 000).

``raw.txt`` and ``raw_metadata.json`` are written first; only then do truncation and
minimum-content checks run. A rejected output stays on disk (marked ``failed`` so it is never
reused), a line goes to ``raw_failure.log``, and :class:`GenerationFailure` is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..data_layer import GenerationMetadata, GensDataLayer, resolve_generation_metadata
from ..data_layer.claims import ClaimStore
from ..data_layer.gens_data_layer import FAILED_FLAG
from ..errors import BudgetExceeded, CatalogError, ConfigError, GenerationFailure, ProviderError
from ..llm.base import GenerationRequest, GenerationResult, LLMProvider
from ..types import Stage
from .context import StageContext
from .reuse import raw_reusable
from .settings import StageSettings


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def count_nonempty_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class RawOutcome:
    """Result of the raw phase for one generation."""

    gen_id: str
    metadata: dict[str, Any]
    """The raw metadata as persisted (with ``reused`` set for this run)."""
    reused: bool
    called_model: bool


def validation_failure(stage: Stage, text: str, finish_reason: str | None, settings: StageSettings) -> tuple[str, str] | None:
    """(reason, message) when the raw output must be rejected, else ``None``."""
    if finish_reason == "length":
        return "truncated", "the model stopped at the max_tokens limit (finish_reason=length); raise max_tokens for this stage or shorten the prompt"
    if stage == "draft" and settings.min_lines > 0:
        lines = count_nonempty_lines(text)
        if lines < settings.min_lines:
            return "min_lines", f"draft has {lines} non-empty lines, fewer than the required {settings.min_lines}"
    return None


def blocked(layer: GensDataLayer, stage: Stage, gen_id: str, phase: str, exc: Exception,
            run_id: str, started_at: str | None = None) -> GenerationFailure:
    """Record a configuration failure (template, parser, model, route, missing parent,
    malformed metadata) in the generation's metadata (see
    :meth:`~..data_layer.GensDataLayer.record_blocked`) and return the
    :class:`GenerationFailure` to raise. A generation never seeded (no ``metadata.json``) gets
    nothing written."""
    if isinstance(exc, GenerationFailure):
        reason, error = exc.reason, exc.detail
    else:
        reason, error = _config_reason(exc), str(exc)
    if layer.main_metadata_path(stage, gen_id).is_file():
        now = utc_now()
        details: dict[str, Any] = {"run_id": run_id, "started_at": started_at or now, "finished_at": now}
        if phase != "parsed":
            details.update({"cost_usd": 0.0, "attempts": 0})  # stopped before any call
        layer.record_blocked(stage, gen_id, phase=phase, reason=reason, error=error, details=details)
    return GenerationFailure(stage, gen_id, reason, error)


def _config_reason(exc: Exception) -> str:
    if isinstance(exc, CatalogError):
        return "catalog"
    if isinstance(exc, ConfigError):
        return "config"
    return "metadata"


def record_failure(layer: GensDataLayer, stage: Stage, gen_id: str, reason: str, message: str, run_id: str) -> str:
    """Append a line to ``raw_failure.log`` and return the log path (as text)."""
    line = f"{utc_now()} run_id={run_id or '-'} reason={reason} {message}"
    return str(layer.append_raw_failure(stage, gen_id, line))


def _base_metadata(metadata: GenerationMetadata, run_id: str) -> dict[str, Any]:
    return {
        "stage": metadata.stage,
        "gen_id": metadata.gen_id,
        "mode": metadata.mode,
        "template_id": metadata.template_id,
        "llm_model_id": metadata.llm_model_id,
        "cohort_id": metadata.cohort_id,
        "replicate": metadata.replicate,
        "run_id": run_id,
        "reused": False,
    }


def _result_metadata(result: GenerationResult, requested_model: str, request: GenerationRequest) -> dict[str, Any]:
    usage = result.usage
    return {
        "provider": result.provider,
        "requested_provider": result.requested_provider,
        "endpoint": result.endpoint,
        "model": requested_model,
        "provider_model": result.model,
        "finish_reason": result.finish_reason,
        "truncated": result.truncated,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
        "cost_usd": usage.cost_usd,
        "cost_source": usage.cost_source,
        "attempts": result.attempts,
        "retry_wait_s": round(result.retry_wait_s, 3),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "response_id": result.response_id,
        "reasoning": result.reasoning,
        "raw_chars": len(result.text),
    }


def _reused_outcome(layer: GensDataLayer, stage: Stage, gen_id: str) -> RawOutcome:
    stored = layer.read_raw_metadata(stage, gen_id)
    return RawOutcome(gen_id=gen_id, metadata={**stored, "reused": True}, reused=True, called_model=False)


async def run_raw_phase(
    ctx: StageContext,
    stage: Stage,
    gen_id: str,
    settings: StageSettings,
    llm: LLMProvider,
    *,
    run_id: str = "",
    prompt: str | None = None,
    commit: Callable[[], Awaitable[None]] | None = None,
    claims: ClaimStore | None = None,
) -> RawOutcome:
    """Produce ``raw.txt`` for one generation, reusing it when the data layer says so.

    ``prompt`` may be passed when the caller already holds it (saves a read). ``commit``
    makes the persisted files durable when ``ctx.layer`` defers its fsyncs (a batch's group
    commit); the outcome is returned only after it. With ``claims``, the generation is claimed
    before anything is called or written and released once the output is durable, so no other
    process pays for it meanwhile.
    Raises :class:`GenerationFailure` (after persisting) on truncation, too few lines, a
    provider error or a spent budget; :class:`~..data_layer.claims.ClaimHeld` (nothing called)
    when another live process holds the generation's claim.
    """
    if raw_reusable(ctx, stage, gen_id, settings, served_by=llm.served_by):
        return _reused_outcome(ctx.layer, stage, gen_id)
    if claims is None:
        return await _produce_raw(ctx, stage, gen_id, settings, llm, run_id, prompt, commit)
    lease = await _claim_call(claims, claims.acquire, stage, gen_id)
    try:
        # Another process may have finished it between our check and our claim.
        if raw_reusable(ctx, stage, gen_id, settings, served_by=llm.served_by):
            return _reused_outcome(ctx.layer, stage, gen_id)
        return await _produce_raw(ctx, stage, gen_id, settings, llm, run_id, prompt, commit)
    finally:
        await _claim_call(claims, claims.release, lease)


async def _claim_call(claims: ClaimStore, function: Callable[..., Any], *args: Any) -> Any:
    """Claims on object stores are HTTP requests: keep them off the event loop there (local
    ones are a few file operations, cheaper than a thread hop)."""
    if claims.is_local:
        return function(*args)
    return await asyncio.to_thread(function, *args)


async def _produce_raw(
    ctx: StageContext,
    stage: Stage,
    gen_id: str,
    settings: StageSettings,
    llm: LLMProvider,
    run_id: str,
    prompt: str | None,
    commit: Callable[[], Awaitable[None]] | None,
) -> RawOutcome:
    """The raw phase proper (call or copy, persist, validate), once reuse is ruled out."""
    layer = ctx.layer
    started_at = utc_now()
    try:
        metadata = resolve_generation_metadata(layer, stage, gen_id)
    except ValueError as exc:
        raise blocked(layer, stage, gen_id, "raw", exc, run_id, started_at) from None
    clock = time.perf_counter()
    if prompt is None:
        try:
            prompt = layer.read_prompt(stage, gen_id)
        except FileNotFoundError:
            raise GenerationFailure(stage, gen_id, "prompt_missing", "prompt.txt is missing; run the prompt phase first") from None

    raw_meta = _base_metadata(metadata, run_id)
    if metadata.mode == "copy":
        text = prompt  # copy mode: the prompt already is the parent's parsed text
        raw_meta.update({"provider": None, "model": None, "finish_reason": "copy", "truncated": False,
                         "usage": None, "cost_usd": 0.0, "attempts": 0, "raw_chars": len(text)})
        finish_reason: str | None = None
        called = False
    else:
        try:
            if not metadata.llm_model_id:
                raise GenerationFailure(stage, gen_id, "metadata", "llm mode needs llm_model_id in metadata.json")
            model = ctx.model(metadata.llm_model_id)
        except (GenerationFailure, CatalogError) as exc:
            raise blocked(layer, stage, gen_id, "raw", exc, run_id, started_at) from None
        request = GenerationRequest(
            prompt=prompt,
            model_id=model.id,
            model=model.model,
            stage=stage,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            replicate=metadata.replicate,
            gen_id=gen_id,
        )
        try:
            result = await llm.generate(request)
        except ConfigError as exc:  # no usable route (a key to set): nothing was called
            raise blocked(layer, stage, gen_id, "raw", exc, run_id, started_at) from None
        except BudgetExceeded as exc:
            raise GenerationFailure(stage, gen_id, "budget", str(exc)) from None
        except ProviderError as exc:
            attempts = getattr(exc, "attempts", None)
            detail = f"{exc} (status={exc.status}, attempts={attempts})"
            # Rate limits, 5xx and timeouts may pass later (a Dagster step retry); other errors will not.
            reason = "provider_transient" if exc.retryable else "provider_error"
            log_path = record_failure(layer, stage, gen_id, reason, detail, run_id)
            raise GenerationFailure(stage, gen_id, reason, f"{exc} (see {log_path})") from None
        text = result.text
        finish_reason = result.finish_reason
        raw_meta.update(_result_metadata(result, model.model, request))
        called = True

    raw_meta.update({"started_at": started_at, "finished_at": utc_now(),
                     "duration_s": round(time.perf_counter() - clock, 4)})
    failure = validation_failure(stage, text, finish_reason, settings)
    if failure is not None:
        raw_meta.update({FAILED_FLAG: True, "failure_reason": failure[0], "error": failure[1]})

    def persist() -> str | None:
        # Persist before judging: operators debug rejected outputs from these files (seed 000).
        layer.write_raw(stage, gen_id, text)
        layer.write_raw_metadata(stage, gen_id, raw_meta)
        if failure is None:
            return None
        return record_failure(layer, stage, gen_id, failure[0], failure[1], run_id)

    # fsync'd writes block; off the event loop, other calls keep flowing meanwhile.
    log_path = await asyncio.to_thread(persist) if called else persist()
    if commit is not None:
        await commit()
    if failure is not None:
        reason, message = failure
        raise GenerationFailure(stage, gen_id, reason, f"{message} (raw output kept; see {log_path})")
    return RawOutcome(gen_id=gen_id, metadata=raw_meta, reused=False, called_model=called)
