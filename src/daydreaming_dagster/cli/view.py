"""``daydream view``: the results explorer in the browser (docs/explorer.md).

Loopback only by default. ``--host`` with a non-loopback address needs ``--allow-remote``;
then every request needs a random token, printed here at start-up.
"""

from __future__ import annotations

import ipaddress

import click

from ..urls import DEFAULT_PORT, explorer_hint
from ._common import data_root_option, resolve_data_root

__all__ = ["echo_explorer_hint", "is_loopback", "view"]


def echo_explorer_hint(cohort_id: str) -> None:
    """Print the one-line pointer to the explorer (``daydream run`` and ``daydream report``)."""
    click.echo(explorer_hint(cohort_id), err=True)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("view")
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--host", "-h", default="127.0.0.1", show_default=True,
              help="Interface to listen on; a non-loopback one needs --allow-remote.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host; every request then needs the token printed at start-up.")
@click.option("--dagster-url", default=None, envvar="DAYDREAM_DAGSTER_URL",
              help="Base URL of a running Dagster UI (`daydream ui`), to link generations to their partitions.")
@data_root_option
def view(port: int, host: str, allow_remote: bool, dagster_url: str | None, data_root: str | None) -> None:
    """Serve the results explorer: read, compare and rate a cohort's essays (Ctrl-C stops it)."""
    from .ui import port_in_use

    remote = not is_loopback(host)
    if remote and not allow_remote:
        raise click.UsageError(
            f"--host {host} is not a loopback address: the explorer would be reachable from the network. "
            "Pass --allow-remote to serve it there (a token is then required), or use --host 127.0.0.1."
        )
    root = resolve_data_root(data_root)
    if port_in_use(host if host != "0.0.0.0" else "127.0.0.1", port):
        raise click.BadParameter(f"{host}:{port} is already in use; pick another with --port", param_hint="--port")

    import uvicorn

    from ..web.app import ExplorerConfig, create_app
    from ..web.security import Secrets

    secrets = Secrets.for_server(require_token=remote)
    app = create_app(ExplorerConfig(data_root=root, secrets=secrets, allow_remote=remote,
                                    dagster_url=dagster_url.rstrip("/") if dagster_url else None))
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/"
    if secrets.access_token:
        url += f"?token={secrets.access_token}"
        click.echo("warning: serving beyond loopback; anyone with the token below can read and rate", err=True)
    click.echo(f"explorer: {url}  (data root {root}; Ctrl-C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
