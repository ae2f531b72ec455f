"""The ``daydream`` command line.

Each command group lives in its own module and is registered here. Errors a user can act on
(:class:`~daydreaming_dagster.errors.DaydreamError`) print as one line and exit 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import DaydreamError

# (module, attribute) of every command; imported lazily so `daydream --help` stays fast.
_COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": (".analyze", "analyze"),
    "cohort": (".cohort", "cohort"),
    "parse": (".parse", "parse"),
    "reparse": (".run", "reparse"),
    "mock-llm": (".mock_llm", "mock_llm"),
    "run": (".run", "run"),
    "status": (".status", "status"),
    "retry-failed": (".retry", "retry_failed"),
    "launch": (".launch", "launch"),
    "estimate": (".status", "estimate"),
    "report": (".report", "report"),
    "partitions": (".partitions", "partitions"),
    "ui": (".ui", "ui"),
    "view": (".view", "view"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0], __name__)
        return getattr(module, target[1])


@click.group(cls=_LazyGroup)
@click.version_option(package_name="daydreaming_dagster")
def cli() -> None:
    """DayDreaming: reproducible LLM idea-generation experiments."""


def _quiet_library_warnings() -> None:
    # Dagster flags beta parameters (backfill_policy) on every import; users cannot act on it.
    import warnings

    warnings.filterwarnings("ignore", message=r".*is currently in beta.*")
    warnings.filterwarnings("ignore", message=r".*is currently in preview.*")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning user errors into one line and exit code 2."""
    _quiet_library_warnings()
    try:
        result = cli.main(args=argv, prog_name="daydream", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except DaydreamError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    # With standalone_mode=False click returns ctx.exit()'s code instead of exiting.
    if isinstance(result, int):
        sys.exit(result)
