"""``daydream ui``: the Dagster UI for this project's definitions, on loopback by default.

The UI reads the same instance ``daydream run`` writes (``DAGSTER_HOME``, default
``./.dagster_home``), so the runs, partitions and per-generation metadata of the CLI show up.

Signals: Dagster maps SIGTERM onto its SIGINT handler, so a server started with SIGINT ignored
(any background job of a non-interactive shell) would also ignore SIGTERM. The server therefore
starts with default signal dispositions, in its own process group; this process forwards
SIGINT/SIGTERM to it once and sweeps the group if anything outlives the grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from .. import app
from ._common import data_root_option, resolve_data_root

DEFINITIONS_MODULE = "daydreaming_dagster.definitions"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
STOP_GRACE_S = 20.0


def ui_command(host: str, port: int, *, webserver_only: bool = False) -> list[str]:
    """The command line of the server: ``dagster dev`` (webserver + daemon, so runs launched
    from the UI start), or only ``dagster-webserver`` (browsing, lighter)."""
    server = ["dagster_webserver"] if webserver_only else ["dagster", "dev"]
    return [sys.executable, "-m", *server, "-m", DEFINITIONS_MODULE, "-h", host, "-p", str(port)]


def _child_setup() -> Callable[[], None]:
    """The ``preexec_fn`` of the server (runs in the child between fork and exec)."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        # Loaded before the fork: nothing but the call itself should run in the child.
        prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup() -> None:
        # Undo an inherited SIG_IGN (see the module docstring).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if prctl is not None:
            # PR_SET_PDEATHSIG: should this process be killed outright, the server still stops.
            prctl(1, int(signal.SIGTERM))

    return setup


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def server_ready(url: str, timeout: float = 1.0) -> bool:
    """Whether the Dagster webserver at ``url`` answers ``/server_info``."""
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def start_server(command: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the server with default SIGINT/SIGTERM handling, leading its own process group."""
    return subprocess.Popen(list(command), env=env, preexec_fn=_child_setup(), process_group=0)


def stop_server(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM the server, wait up to ``grace_s``, then kill whatever is left of its process
    group (Dagster's code servers, webserver, daemon). Returns the server's exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    _sweep_group(process.pid)
    return process.returncode


def _sweep_group(pgid: int, grace_s: float = 3.0) -> None:
    # Children that outlived the leader's own shutdown (rare) still carry its process group.
    if not _group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serve(
    command: Sequence[str],
    env: dict[str, str],
    url: str,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run the server until it exits or this process gets SIGINT/SIGTERM; returns an exit code
    (0 when stopped by a signal)."""
    stop_requested: list[int] = []

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    process = start_server(command, env)
    try:
        ready = False
        while process.poll() is None and not stop_requested:
            if not ready and server_ready(url, timeout=0.5):
                ready = True
                if on_ready:
                    on_ready()
            time.sleep(0.25)
    finally:
        code = stop_server(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop_requested:
        return 0
    return code if code and code > 0 else (1 if code else 0)


@click.command("ui")
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option(
    "--host",
    "-h",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on. The UI has no authentication: keep it on loopback.",
)
@click.option(
    "--webserver-only",
    is_flag=True,
    help="Start only dagster-webserver (no daemon): lighter, for browsing; runs launched "
    "from the UI then wait in the queue until a daemon runs.",
)
@data_root_option
def ui(port: int, host: str, webserver_only: bool, data_root: str | None) -> None:
    """Start the Dagster UI for this project (Ctrl-C or SIGTERM stops it)."""
    root = resolve_data_root(data_root)
    if port_in_use(host, port):
        raise click.BadParameter(
            f"{host}:{port} is already in use; pick another with --port", param_hint="--port"
        )
    if host not in _LOOPBACK:
        click.echo(f"warning: the Dagster UI has no authentication and listens on {host}", err=True)
    # Sets DAGSTER_HOME to the default when unset and writes its dagster.yaml.
    app.prepare_instance()
    env = dict(os.environ)
    env["DAYDREAMING_DATA_ROOT"] = root if "://" in root else str(Path(root).resolve())
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    click.echo(
        f"starting the Dagster UI (DAGSTER_HOME={env['DAGSTER_HOME']}, data root "
        f"{env['DAYDREAMING_DATA_ROOT']})",
        err=True,
    )
    code = serve(
        ui_command(host, port, webserver_only=webserver_only),
        env,
        url,
        on_ready=lambda: click.echo(f"Dagster UI ready: {url}  (Ctrl-C to stop)", err=True),
    )
    click.echo("Dagster UI stopped", err=True)
    if code:
        sys.exit(code)
