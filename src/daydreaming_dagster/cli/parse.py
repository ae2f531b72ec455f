"""``daydream parse STAGE FILE``: run a parser over one response file and print the result.

Handy for checking a parser against a raw output (``data/gens/evaluation/<gen_id>/raw.txt``)
before re-parsing a whole cohort.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..parsers import ParseError, get_parser
from ..types import STAGES


def _read_text(file: str) -> str:
    data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = "standard input" if file == "-" else file
        raise ConfigError(f"{shown} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


@click.command("parse")
@click.argument("stage", type=click.Choice(list(STAGES)))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--parser",
    "parser_name",
    default=None,
    metavar="NAME",
    help="Parser name (default: the stage's default parser; an unknown name lists the known ones).",
)
@click.option(
    "--details", is_flag=True, help="Also print the parsed text and the parser's details."
)
@click.pass_context
def parse(
    ctx: click.Context, stage: str, file: str, parser_name: str | None, details: bool
) -> None:
    """Parse FILE (a raw model response, '-' for stdin) with a STAGE parser and print JSON.

    Evaluations print {"score", "scale", "parser"}; drafts and essays print {"parser", "text"}.
    Exit status 1 when the parser finds no result (the reason goes to stderr), 2 for an unknown
    stage or parser or a missing file.
    """
    name, parser = get_parser(stage, parser_name)  # type: ignore[arg-type]
    text = _read_text(file)
    try:
        result = parser(text)
    except ParseError as exc:
        click.echo(f"{name}: {exc}", err=True)
        ctx.exit(1)
    payload: dict[str, Any]
    if stage == "evaluation":
        payload = {"score": result.score, "scale": result.scale, "parser": name}
        if details:
            payload["text"] = result.text
    else:
        payload = {"parser": name, "text": result.text}
    if details:
        payload["details"] = result.details
    click.echo(json.dumps(payload, ensure_ascii=False))
