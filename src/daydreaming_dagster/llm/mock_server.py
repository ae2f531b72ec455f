"""A mock OpenAI-compatible chat-completions server for tests and benchmarks (loopback only).

It speaks enough HTTP/1.1 (keep-alive, Content-Length or chunked bodies) for the ``openai``
SDK, on plain ``asyncio`` streams, so thousands of requests can sleep in ``--latency`` at once.

Endpoints:

- ``POST /v1/chat/completions`` and ``POST /api/v1/chat/completions`` (OpenRouter-style):
  answers with :func:`~.offline.synthetic_completion` text (evaluation scores follow the quoted
  essay's planted quality plus the model's planted offset; comparison verdicts follow the two
  quoted essays' planted qualities with a planted bias for essay A), usage and an OpenRouter-style
  ``usage.cost``; ``finish_reason`` ``length`` with cut text at the truncate rate or when the
  text exceeds ``max_tokens``; 429 with ``Retry-After`` over the rate limit, over a model's
  requests- or tokens-per-minute quota (a sliding 60 s window, per model), or (with 500) at
  the error rate; a model whose name contains ``reasoning`` also gets reasoning text
  (``message.reasoning`` on the OpenRouter path, ``message.reasoning_content`` on ``/v1``).
- ``GET /v1/models`` (and ``/api/v1/models``), ``GET /stats`` (call counts, max in flight,
  arrival times, each answer's latency and their sum), ``POST /reset``, ``POST /script`` (a
  JSON list of scripted responses).

**Latency**: fixed (``latency_s``) or drawn per request from a log-normal distribution with a
given median and 99th percentile (``latency_dist="lognormal"``), as long generations of real
providers are heavy-tailed. A request's draw is seeded by ``seed`` and the request itself (model,
stage, replicate, prompt), not by its arrival order: the same cohort meets the same latencies
whatever the order, concurrency or retries of its calls, so schedulers compare fairly. Every answered request's latency is in ``/stats`` and, with
``request_log``, appended as one JSON line to that file.

**Stage** of a request: the ``X-Daydream-Stage`` header, which the project's provider sends,
wins. Without it the prompt decides: a prompt quoting two essays in ``<essay id="A">…</essay>``
and ``<essay id="B">…</essay>`` blocks is a comparison (answered with reasons and a last line
``WINNER: A|B|tie`` following the essays' planted qualities); else a prompt mentioning
``SCORE``/``score`` is an evaluation; else one mentioning ``essay-idea`` is a draft; else one mentioning ``essay`` is an
essay; anything else is a draft. ``X-Daydream-Replicate`` seeds the text like the offline
provider's replicate (default 1).

**Scripted responses** (:class:`ScriptedResponse`) are served first, one per request, in
order: e.g. ``server.script(ScriptedResponse(429, retry_after=0.1), times=3)`` makes the next
three calls fail with 429, after which calls succeed again.

Use :class:`MockLLMServer` in-process (a background thread), or ``daydream mock-llm``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .offline import count_tokens, quoted_pair, synthetic_completion, truncate_to_tokens

_MAX_ARRIVALS = 100_000
_MAX_REQUEST_LOG = 20_000
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_SCORE = re.compile(r"score", re.IGNORECASE)
_Z_99 = 2.3263478740408408  # the standard normal's 99th percentile
QUOTA_WINDOW_S = 60.0


@dataclass(frozen=True)
class ModelQuota:
    """A model's quota: requests and tokens (prompt + completion) per sliding minute."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @classmethod
    def parse(cls, text: str) -> tuple[str, ModelQuota]:
        """``MODEL=RPM[:TPM]`` (either may be empty), e.g. ``mock/model=120:40000``."""
        model, sep, limits = text.partition("=")
        rpm, _, tpm = limits.partition(":")
        try:
            quota = cls(int(rpm) if rpm.strip() else None, int(tpm) if tpm.strip() else None)
        except ValueError:
            quota = None
        if not sep or not model.strip() or quota is None or quota == cls():
            raise ValueError(f"model quota {text!r} is not MODEL=RPM[:TPM], e.g. mock/model=120:40000")
        return model.strip(), quota


@dataclass(frozen=True)
class MockConfig:
    """Behaviour of the mock server."""

    latency_s: float = 0.0
    """Seconds each successful completion sleeps before answering (``latency_dist="fixed"``)."""
    latency_dist: Literal["fixed", "lognormal"] = "fixed"
    """``lognormal``: each completion's latency is drawn with ``latency_median_s`` and
    ``latency_p99_s`` (seeded by ``seed``)."""
    latency_median_s: float = 2.0
    """Median latency of the log-normal distribution."""
    latency_p99_s: float = 20.0
    """99th percentile of the log-normal distribution (>= the median)."""
    requests_per_minute: int | None = None
    """Every model's request quota per sliding minute (``model_quotas`` overrides per model)."""
    tokens_per_minute: int | None = None
    """Every model's token quota (prompt + completion) per sliding minute."""
    model_quotas: tuple[tuple[str, ModelQuota], ...] = ()
    """Per-model quotas, by model name as requested (``mock/model``)."""
    request_log: str | None = None
    """A file to append one JSON line per completion request to (model, stage, status, latency)."""
    error_rate: float = 0.0
    """Probability a request fails at random, half with 429 (and Retry-After), half with 500."""
    rate_limit_per_s: int | None = None
    """Requests admitted per one-second window; more get 429 with the window's remaining time."""
    truncate_rate: float = 0.0
    """Probability a completion is cut in half and finishes with ``length``."""
    seed: int = 0
    """Seed of the error, truncation and latency draws."""
    retry_after_s: float = 1.0
    """``Retry-After`` sent with random 429s."""
    price_in_per_mtok: float = 1.0
    """USD per million prompt tokens used for the reported ``usage.cost``."""
    price_out_per_mtok: float = 2.0
    """USD per million completion tokens."""
    report_cost: bool = True
    """Include ``usage.cost`` (as OpenRouter does); off to test price-table costs."""
    known_models: frozenset[str] | None = None
    """When set, other model names get 404."""
    api_key: str | None = None
    """When set, requests whose bearer token differs get 401."""

    def __post_init__(self) -> None:
        if self.latency_dist not in ("fixed", "lognormal"):
            raise ValueError(f"latency_dist must be 'fixed' or 'lognormal', got {self.latency_dist!r}")
        if self.latency_dist == "lognormal" and not 0 < self.latency_median_s <= self.latency_p99_s:
            raise ValueError(f"lognormal latency needs 0 < median ({self.latency_median_s}) <= p99 "
                             f"({self.latency_p99_s})")

    def quota_for(self, model: str) -> ModelQuota:
        """The quota of ``model``: its own entry, else the server-wide one."""
        for name, quota in self.model_quotas:
            if name == model:
                return quota
        return ModelQuota(self.requests_per_minute, self.tokens_per_minute)


@dataclass(frozen=True)
class ScriptedResponse:
    """A response the server gives instead of its default behaviour, for one request."""

    status: int = 200
    retry_after: float | None = None
    """``Retry-After`` seconds to send (429/503)."""
    text: str | None = None
    """Completion text (200; default: synthetic text)."""
    finish_reason: str | None = None
    """Finish reason (200; default ``stop``)."""
    reasoning: str | None = None
    """Reasoning text sent apart from the answer (200)."""
    latency_s: float | None = None
    """Seconds to sleep before answering (default: the server's latency for 200, 0 otherwise)."""
    error_message: str | None = None
    """Error body message (non-200)."""
    body: dict[str, Any] | None = None
    """A JSON body sent as is with ``status`` (e.g. an error inside a 200, as OpenRouter does)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScriptedResponse:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class _Stats:
    total: int = 0
    by_model: collections.Counter[str] = field(default_factory=collections.Counter)
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    by_path: collections.Counter[str] = field(default_factory=collections.Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_ARRIVALS)
    )
    requests: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_REQUEST_LOG)
    )
    latency_sum_s: float = 0.0
    """Sum of the latencies of answered completions (200s), the provider's share of the work."""
    latencies: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_ARRIVALS)
    )
    quota_rejections: collections.Counter[str] = field(default_factory=collections.Counter)
    """429s sent because a model's per-minute quota was spent, by model."""


def infer_stage(prompt: str, header: str | None = None) -> str:
    """The stage a request serves: the header when valid, else rules on the prompt text."""
    if header in ("draft", "essay", "evaluation", "comparison"):
        return header
    if quoted_pair(prompt) is not None:
        return "comparison"
    if _SCORE.search(prompt):
        return "evaluation"
    if "essay-idea" in prompt:
        return "draft"
    if "essay" in prompt.lower():
        return "essay"
    return "draft"


def _prompt_of(messages: Any) -> str:
    """All message texts joined (string contents or lists of text parts)."""
    parts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n\n".join(parts)


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "mock_error", "code": status}}


class MockLLMApp:
    """Request handling and statistics, independent of the transport (thread-safe stats)."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._stats = _Stats()
        self._script: collections.deque[ScriptedResponse] = collections.deque()
        self._window_start = 0.0
        self._window_count = 0
        self._counter = 0
        self._quota_use: dict[str, collections.deque[tuple[float, int]]] = {}

    # -- control ---------------------------------------------------------------------------

    def script(self, *responses: ScriptedResponse, times: int = 1) -> None:
        """Queue ``responses`` (``times`` over) to be served before the default behaviour."""
        with self._lock:
            for _ in range(times):
                self._script.extend(responses)

    def reset(self) -> None:
        """Clear statistics, the script queue and the rate-limit window."""
        with self._lock:
            self._stats = _Stats()
            self._script.clear()
            self._window_start, self._window_count = 0.0, 0
            self._rng = random.Random(self.config.seed)
            self._quota_use.clear()

    def stats(self) -> dict[str, Any]:
        """Counts so far: ``total``, ``by_model``, ``by_status``, ``by_path``, ``in_flight``,
        ``max_in_flight``, ``arrivals`` (``time.monotonic()`` of each completion request),
        ``requests`` (the last requests' model, stage, max_tokens, temperature, status,
        latency), ``latencies`` and ``latency_sum_s`` (of answered completions) and
        ``quota_rejections`` (429s for a spent per-minute quota, by model)."""
        with self._lock:
            s = self._stats
            return {
                "total": s.total,
                "by_model": dict(s.by_model),
                "by_status": dict(s.by_status),
                "by_path": dict(s.by_path),
                "in_flight": s.in_flight,
                "max_in_flight": s.max_in_flight,
                "scripted_pending": len(self._script),
                "arrivals": list(s.arrivals),
                "requests": list(s.requests),
                "latency_sum_s": round(s.latency_sum_s, 6),
                "latencies": list(s.latencies),
                "quota_rejections": dict(s.quota_rejections),
            }

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one HTTP request: (status, extra headers, JSON body)."""
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path in ("/v1/chat/completions", "/api/v1/chat/completions", "/chat/completions"):
            if method != "POST":
                return 405, {}, _error_body(405, "use POST")
            return await self._completion(path, headers, body)
        if path in ("/v1/models", "/api/v1/models", "/models") and method == "GET":
            names = sorted(self.config.known_models or {"mock-model"})
            return (
                200,
                {},
                {
                    "object": "list",
                    "data": [{"id": n, "object": "model", "owned_by": "mock"} for n in names],
                },
            )
        if path == "/stats" and method == "GET":
            return 200, {}, self.stats()
        if path == "/reset" and method == "POST":
            self.reset()
            return 200, {}, {"ok": True}
        if path == "/script" and method == "POST":
            try:
                items = json.loads(body or b"[]")
                self.script(*(ScriptedResponse.from_dict(i) for i in items))
            except (ValueError, TypeError, AttributeError) as exc:
                return 400, {}, _error_body(400, f"bad script: {exc}")
            return 200, {}, {"ok": True, "pending": len(self._script)}
        return 404, {}, _error_body(404, f"no route {method} {path}")

    async def _completion(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        try:
            payload = json.loads(body)
            model = str(payload["model"])
            messages = payload["messages"]
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {}, _error_body(400, f"invalid request body: {exc}")
        prompt = _prompt_of(messages)
        stage = infer_stage(prompt, headers.get("x-daydream-stage"))
        max_tokens = payload.get("max_tokens") or payload.get("max_completion_tokens")
        now = time.monotonic()
        with self._lock:
            s = self._stats
            s.total += 1
            s.by_model[model] += 1
            s.by_path[path] += 1
            s.arrivals.append(now)
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
            scripted = self._script.popleft() if self._script else None
            limited = self._over_rate_limit(now) if scripted is None else None
            draw_error, draw_kind, draw_trunc = (self._rng.random() for _ in range(3))
            latency = self.draw_latency(f"{model}\0{stage}\0{headers.get('x-daydream-replicate', '1')}\0{prompt}")
            self._counter += 1
            number = self._counter
        status = 500  # stays so if answering raises
        slept = [0.0]
        try:
            status, extra, answer = await self._answer(
                path,
                headers,
                payload,
                model,
                prompt,
                stage,
                max_tokens,
                scripted,
                limited,
                (draw_error, draw_kind, draw_trunc),
                number,
                latency,
                slept,
            )
            return status, extra, answer
        finally:
            entry = {
                "model": model,
                "stage": stage,
                "max_tokens": max_tokens,
                "temperature": payload.get("temperature"),
                "status": status,
                "path": path,
                "at": now,
                "latency_s": round(slept[0], 6),
            }
            with self._lock:
                self._stats.in_flight -= 1
                self._stats.by_status[str(status)] += 1
                self._stats.requests.append(entry)
                if status == 200:
                    self._stats.latency_sum_s += slept[0]
                    self._stats.latencies.append(round(slept[0], 6))
                if self.config.request_log:
                    with open(self.config.request_log, "a", encoding="utf-8") as log:
                        log.write(json.dumps(entry) + "\n")

    def draw_latency(self, request_key: str) -> float:
        """The latency of the request ``request_key`` identifies: fixed, or a log-normal draw
        (the configured median and 99th percentile) seeded by ``seed`` and the key."""
        cfg = self.config
        if cfg.latency_dist == "fixed":
            return cfg.latency_s
        mu = math.log(cfg.latency_median_s)
        sigma = (math.log(cfg.latency_p99_s) - mu) / _Z_99
        digest = hashlib.sha256(f"{cfg.seed}\0{request_key}".encode()).digest()
        return math.exp(random.Random(digest).gauss(mu, sigma))

    def _over_quota(self, model: str, tokens: int, now: float) -> float | None:
        """Seconds until ``model``'s sliding-minute quota admits this request (``None``: admitted
        now, and counted)."""
        quota = self.config.quota_for(model)
        if quota.requests_per_minute is None and quota.tokens_per_minute is None:
            return None
        with self._lock:
            used = self._quota_use.setdefault(model, collections.deque())
            while used and used[0][0] <= now - QUOTA_WINDOW_S:
                used.popleft()
            over_requests = quota.requests_per_minute is not None and len(used) >= quota.requests_per_minute
            spent = sum(t for _, t in used)
            over_tokens = quota.tokens_per_minute is not None and spent + tokens > quota.tokens_per_minute
            if not (over_requests or over_tokens):
                used.append((now, tokens))
                return None
            self._stats.quota_rejections[model] += 1
            if over_requests and quota.requests_per_minute:
                free_at = used[len(used) - quota.requests_per_minute][0] + QUOTA_WINDOW_S
            else:  # wait until enough old tokens have left the window
                budget = quota.tokens_per_minute or 0
                free_at = now + QUOTA_WINDOW_S
                for at, old_tokens in used:
                    spent -= old_tokens
                    if spent + tokens <= budget:
                        free_at = at + QUOTA_WINDOW_S
                        break
            return max(0.01, free_at - now)

    def _over_rate_limit(self, now: float) -> float | None:
        """Seconds until the window reopens when this request is over the limit (lock held)."""
        limit = self.config.rate_limit_per_s
        if not limit:
            return None
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        if self._window_count >= limit:
            return max(0.01, 1.0 - (now - self._window_start))
        self._window_count += 1
        return None

    async def _answer(
        self,
        path: str,
        headers: dict[str, str],
        payload: dict[str, Any],
        model: str,
        prompt: str,
        stage: str,
        max_tokens: Any,
        scripted: ScriptedResponse | None,
        limited: float | None,
        draws: tuple[float, float, float],
        number: int,
        drawn_latency: float = 0.0,
        slept: list[float] | None = None,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        cfg = self.config
        if cfg.api_key is not None and headers.get("authorization") != f"Bearer {cfg.api_key}":
            return 401, {}, _error_body(401, "No auth credentials found")
        if scripted is not None and scripted.body is not None:
            if scripted.latency_s:
                await asyncio.sleep(scripted.latency_s)
            return scripted.status, {}, scripted.body
        if scripted is not None and scripted.status != 200:
            if scripted.latency_s:
                await asyncio.sleep(scripted.latency_s)
            extra = (
                {"Retry-After": f"{scripted.retry_after:g}"}
                if scripted.retry_after is not None
                else {}
            )
            message = scripted.error_message or f"scripted {scripted.status}"
            return scripted.status, extra, _error_body(scripted.status, message)
        if limited is not None:
            return 429, {"Retry-After": f"{limited:.3f}"}, _error_body(429, "rate limit exceeded")
        if cfg.known_models is not None and model not in cfg.known_models:
            return 404, {}, _error_body(404, f"model '{model}' not found")
        draw_error, draw_kind, draw_trunc = draws
        if scripted is None and draw_error < cfg.error_rate:
            if draw_kind < 0.5:
                return (
                    429,
                    {"Retry-After": f"{cfg.retry_after_s:g}"},
                    _error_body(429, "random rate limit"),
                )
            return 500, {}, _error_body(500, "random server error")
        latency = (
            scripted.latency_s if scripted and scripted.latency_s is not None else drawn_latency
        )
        try:
            replicate = int(headers.get("x-daydream-replicate", "1"))
        except ValueError:
            replicate = 1
        text = (
            scripted.text
            if scripted and scripted.text is not None
            else synthetic_completion(prompt, stage, model, replicate)
        )
        finish_reason = (scripted.finish_reason if scripted else None) or "stop"
        if scripted is None and draw_trunc < cfg.truncate_rate:
            text = truncate_to_tokens(text, max(1, count_tokens(text) // 2))
            finish_reason = "length"
        if isinstance(max_tokens, int) and count_tokens(text) > max_tokens:
            text, finish_reason = truncate_to_tokens(text, max_tokens), "length"
        prompt_tokens, completion_tokens = count_tokens(prompt), count_tokens(text)
        wait = self._over_quota(model, prompt_tokens + completion_tokens, time.monotonic())
        if wait is not None:
            return 429, {"Retry-After": f"{wait:.3f}"}, _error_body(429, f"quota of model '{model}' exceeded")
        if latency > 0:
            await asyncio.sleep(latency)
            if slept is not None:
                slept[0] = latency
        message: dict[str, Any] = {"role": "assistant", "content": text}
        reasoning = scripted.reasoning if scripted else None
        if reasoning is None and "reasoning" in model:
            reasoning = f"(mock reasoning) Thinking about the {stage} before answering."
        if reasoning is not None:
            key = "reasoning" if path.startswith("/api/") else "reasoning_content"
            message[key] = reasoning
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if cfg.report_cost:
            usage["cost"] = round(
                (prompt_tokens * cfg.price_in_per_mtok + completion_tokens * cfg.price_out_per_mtok)
                / 1_000_000,
                12,
            )
        return (
            200,
            {},
            {
                "id": f"mock-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": usage,
            },
        )


# -- HTTP/1.1 transport ------------------------------------------------------------------------


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readline()


def _response_bytes(
    status: int, extra: dict[str, str], body: dict[str, Any], keep_alive: bool
) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


async def _serve_connection(
    app: MockLLMApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except asyncio.LimitOverrunError:
                writer.write(_response_bytes(431, {}, _error_body(431, "headers too large"), False))
                await writer.drain()
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await _read_chunked(reader)
            else:
                body = b""
            try:
                status, extra, answer = await app.handle(method, target, headers, body)
            except Exception as exc:  # a bug here must show as a 500, not a hung client
                status, extra, answer = 500, {}, _error_body(500, f"mock server error: {exc!r}")
            keep_alive = (
                version.strip() == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            )
            writer.write(_response_bytes(status, extra, answer, keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return  # the client went away (e.g. it timed out while we slept)
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class _Transport:
    """The asyncio server plus the connection tasks it spawned (cancelled on shutdown)."""

    def __init__(self, app: MockLLMApp) -> None:
        self.app = app
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self.tasks.add(task)
            try:
                await _serve_connection(self.app, reader, writer)
            except asyncio.CancelledError:
                # Shutdown cancels idle keep-alive connections. Returning normally matters:
                # asyncio's stream callback logs a traceback for a task that ends cancelled.
                pass
            finally:
                if task is not None:
                    self.tasks.discard(task)

        self.server = await asyncio.start_server(on_connect, host, port, backlog=1024)
        return int(self.server.sockets[0].getsockname()[1])

    async def shutdown(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)


async def serve(
    config: MockConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Any = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the mock server in the current loop until ``stop`` is set (or cancelled).

    ``ready(port)`` is called once it listens (for printing the address).
    """
    transport = _Transport(MockLLMApp(config))
    bound = await transport.start(host, port)
    if ready is not None:
        ready(bound)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await transport.shutdown()


class MockLLMServer:
    """The mock server on 127.0.0.1 in a background thread, for tests and benchmarks.

    ``with MockLLMServer(MockConfig(latency_s=0.1)) as server:`` then point a client at
    ``server.base_url`` (OpenAI style, ``/v1``) or ``server.openrouter_base_url``
    (``/api/v1``). ``server.url`` is the root; ``stats()``, ``reset()`` and ``script()`` act on
    the server directly (no HTTP).
    """

    def __init__(
        self, config: MockConfig | None = None, *, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.config = config or MockConfig()
        self.app = MockLLMApp(self.config)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._transport: _Transport | None = None

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL (``<url>/v1``)."""
        return f"{self.url}/v1"

    @property
    def openrouter_base_url(self) -> str:
        """OpenRouter-style base URL (``<url>/api/v1``)."""
        return f"{self.url}/api/v1"

    def start(self) -> MockLLMServer:
        """Start listening (returns once the port is bound)."""
        if self._thread is not None:
            return self
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._transport = _Transport(self.app)
            try:
                self.port = loop.run_until_complete(self._transport.start(self.host, self.port))
            except BaseException as exc:  # e.g. port in use: report to the caller
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._transport.shutdown())
                loop.close()

        self._thread = threading.Thread(target=run, name="mock-llm-server", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop the server and its thread (in-flight requests are cancelled)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> MockLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """See :meth:`MockLLMApp.stats`."""
        return self.app.stats()

    def reset(self) -> None:
        """See :meth:`MockLLMApp.reset`."""
        self.app.reset()

    def script(self, *responses: ScriptedResponse, times: int = 1) -> None:
        """See :meth:`MockLLMApp.script`."""
        self.app.script(*responses, times=times)


def config_dict(config: MockConfig) -> dict[str, Any]:
    """``config`` as JSON-ready values (for logs and the CLI banner)."""
    data = asdict(config)
    if data["known_models"] is not None:
        data["known_models"] = sorted(data["known_models"])
    return data


def scripted(items: Iterable[dict[str, Any]]) -> list[ScriptedResponse]:
    """Scripted responses from JSON-like dicts (``POST /script`` uses the same shape)."""
    return [ScriptedResponse.from_dict(i) for i in items]
