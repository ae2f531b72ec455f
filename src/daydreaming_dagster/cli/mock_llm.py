"""``daydream mock-llm``: run the mock OpenAI-compatible server in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import click

from ..llm.mock_server import MockConfig, config_dict, serve


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
    config = MockConfig(
        latency_s=latency,
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
