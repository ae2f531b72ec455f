"""``daydream mock-llm``: run the mock OpenAI-compatible server in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import click

from ..llm.mock_server import MockConfig, ModelQuota, config_dict, serve


def _validate_rate(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise click.BadParameter(f"must be between 0 and 1, got {value}")
    return value


@click.command("mock-llm")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port, printed on start).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds each completion sleeps before answering.",
)
@click.option(
    "--latency-dist",
    type=click.Choice(["fixed", "lognormal"]),
    default="fixed",
    show_default=True,
    help="fixed: every completion takes --latency; lognormal: drawn per request (seeded) with "
    "--latency-median and --latency-p99, heavy-tailed like long generations of real providers.",
)
@click.option("--latency-median", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="Median seconds of the lognormal latency.")
@click.option("--latency-p99", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="99th percentile seconds of the lognormal latency (>= the median).")
@click.option("--rpm", type=click.IntRange(min=1), default=None,
              help="Requests per sliding minute per model; more get 429 with Retry-After.")
@click.option("--tpm", type=click.IntRange(min=1), default=None,
              help="Tokens (prompt + completion) per sliding minute per model; more get 429.")
@click.option("--model-quota", "model_quotas", multiple=True, metavar="MODEL=RPM[:TPM]",
              help="A quota for one model (repeatable), e.g. mock/model=120:40000 or mock/model=:40000.")
@click.option("--request-log", type=click.Path(dir_okay=False), default=None,
              help="Append one JSON line per completion request (model, stage, status, latency_s).")
@click.option(
    "--error-rate",
    type=float,
    default=0.0,
    show_default=True,
    callback=_validate_rate,
    help="Probability of a random failure (half 429 with Retry-After, half 500).",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Requests admitted per second; more get 429 with Retry-After.",
)
@click.option(
    "--truncate-rate",
    type=float,
    default=0.0,
    show_default=True,
    callback=_validate_rate,
    help="Probability a completion is cut and finishes with 'length'.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the random errors and truncations.",
)
@click.option(
    "--retry-after",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Retry-After seconds sent with random 429s.",
)
@click.option(
    "--no-cost",
    is_flag=True,
    default=False,
    help="Do not report usage.cost (clients then price calls from the catalog).",
)
def mock_llm(
    port: int,
    latency: float,
    latency_dist: str,
    latency_median: float,
    latency_p99: float,
    rpm: int | None,
    tpm: int | None,
    model_quotas: tuple[str, ...],
    request_log: str | None,
    error_rate: float,
    rate_limit: int | None,
    truncate_rate: float,
    seed: int,
    retry_after: float,
    no_cost: bool,
) -> None:
    """Serve a mock OpenAI-compatible chat API on 127.0.0.1 until interrupted.

    It answers POST /v1/chat/completions and /api/v1/chat/completions with synthetic,
    stage-shaped text (as the offline provider writes), usage and cost; GET /stats shows call
    counts, POST /reset clears them, POST /script queues scripted responses. Point the
    pipeline at it with DAYDREAMING_LLM_BASE_URL=http://127.0.0.1:PORT/v1.
    """
    try:
        quotas = tuple(ModelQuota.parse(text) for text in model_quotas)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--model-quota") from None
    if latency_dist == "lognormal" and latency_p99 < latency_median:
        raise click.BadParameter(f"must be >= --latency-median ({latency_median:g}), got {latency_p99:g}",
                                 param_hint="--latency-p99")
    config = MockConfig(
        latency_s=latency,
        latency_dist=latency_dist,  # type: ignore[arg-type]
        latency_median_s=latency_median,
        latency_p99_s=latency_p99,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        model_quotas=quotas,
        request_log=request_log,
        error_rate=error_rate,
        rate_limit_per_s=rate_limit,
        truncate_rate=truncate_rate,
        seed=seed,
        retry_after_s=retry_after,
        report_cost=not no_cost,
    )

    def ready(bound: int) -> None:
        # One parseable line first (scripts read the port from it), then the details.
        click.echo(f"mock-llm listening on http://127.0.0.1:{bound}")
        click.echo(f"  export DAYDREAMING_LLM_BASE_URL=http://127.0.0.1:{bound}/v1")
        click.echo(f"  config: {json.dumps(config_dict(config))}")
        click.echo("  stop with Ctrl-C")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve(config, host="127.0.0.1", port=port, ready=ready, stop=stop)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); pick another --port "
            "or 0 for any free port"
        ) from exc
    except KeyboardInterrupt:
        pass
    click.echo("mock-llm stopped")
