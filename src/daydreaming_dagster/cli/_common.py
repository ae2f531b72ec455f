"""Helpers shared by CLI commands (options, data root, Ctrl-C handling)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

import click

from .. import app
from ..errors import ConfigError

data_root_option = click.option(
    "--data-root",
    type=str,
    default=None,
    help="Data root (default: $DAYDREAMING_DATA_ROOT or ./data).",
)


def resolve_data_root(data_root: str | None) -> str:
    try:
        return app.data_root(data_root)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--data-root") from None


@contextlib.contextmanager
def graceful_interrupt(message: str) -> Iterator[None]:
    """First Ctrl-C: stop launching new generations (calls in flight finish and persist).
    Second Ctrl-C: the usual KeyboardInterrupt."""
    app.reset_stop()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        app.request_stop()
        click.echo(f"\n{message}", err=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. embedded use): no special handling
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_in_worker_thread(work: Callable[[], None]) -> None:
    """Run ``work`` in a thread while the main thread keeps handling signals.

    Dagster swaps the main thread's SIGINT handler while it executes a run (and swallows the
    interrupt); run from another thread it leaves ours alone, so the first Ctrl-C reaches
    :func:`graceful_interrupt`. Exceptions from ``work`` are re-raised here.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    worker = threading.Thread(target=target, name="daydream-run", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.2)  # short waits keep the main thread responsive to signals
    if errors:
        raise errors[0]
