"""Parsed phase: the template's parser (by name, from the registry) over the raw output.

A parse failure keeps the raw files, records the error in ``parsed_metadata.json`` (marked
``failed``, never reused) and raises :class:`GenerationFailure`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..data_layer import resolve_generation_metadata
from ..data_layer.gens_data_layer import FAILED_FLAG
from ..errors import CatalogError, ConfigError, GenerationFailure
from ..parsers import ParseError, get_parser
from ..types import Stage
from .context import StageContext
from .raw import blocked, utc_now
from .settings import StageSettings


@dataclass(frozen=True)
class ParsedOutcome:
    """Result of the parsed phase for one generation."""

    gen_id: str
    metadata: dict[str, Any]
    reused: bool


def run_parsed_phase(
    ctx: StageContext,
    stage: Stage,
    gen_id: str,
    settings: StageSettings,
    *,
    run_id: str = "",
    parser_name: str | None = None,
) -> ParsedOutcome:
    """Parse ``raw.txt`` into ``parsed.txt``; ``parser_name`` overrides the template's parser."""
    layer = ctx.layer
    if parser_name is None and layer.parsed_exists(stage, gen_id, force=settings.force):
        stored = layer.read_parsed_metadata(stage, gen_id)
        return ParsedOutcome(gen_id=gen_id, metadata={**stored, "reused": True}, reused=True)

    started_at = utc_now()
    try:
        metadata = resolve_generation_metadata(layer, stage, gen_id)
    except ValueError as exc:
        raise blocked(layer, stage, gen_id, "parsed", exc, run_id, started_at) from None
    if not layer.raw_exists(stage, gen_id):
        raise GenerationFailure(stage, gen_id, "raw_missing",
                                "no usable raw output (missing or rejected); run or re-run the raw phase")
    clock = time.perf_counter()
    raw_text = layer.read_raw(stage, gen_id)
    try:
        if parser_name is None:
            parser_name = ctx.template(stage, metadata.template_id).parser
        resolved_name, parser = get_parser(stage, parser_name)
    except (CatalogError, ConfigError) as exc:  # unknown template or parser: recorded, raw kept
        raise blocked(layer, stage, gen_id, "parsed", exc, run_id, started_at) from None

    parsed_meta: dict[str, Any] = {
        "stage": stage,
        "gen_id": gen_id,
        "template_id": metadata.template_id,
        "parser": resolved_name,
        "run_id": run_id,
        "started_at": started_at,
        "reused": False,
    }
    try:
        result = parser(raw_text)
    except ParseError as exc:
        layer.clear_parsed(stage, gen_id)
        parsed_meta.update({"success": False, FAILED_FLAG: True, "error": str(exc),
                            "finished_at": utc_now(), "duration_s": round(time.perf_counter() - clock, 4)})
        layer.write_parsed_metadata(stage, gen_id, parsed_meta)
        raise GenerationFailure(stage, gen_id, "parse_error",
                                f"parser {resolved_name!r} found no result: {exc} (raw output kept)") from None

    parsed_meta.update({"success": True, "error": None, "parsed_chars": len(result.text),
                        "finished_at": utc_now(), "duration_s": round(time.perf_counter() - clock, 4)})
    if stage == "evaluation":
        parsed_meta.update({"score": result.score, "scale": result.scale})
    if result.details:
        parsed_meta["details"] = result.details
    layer.write_parsed(stage, gen_id, result.text)
    layer.write_parsed_metadata(stage, gen_id, parsed_meta)
    return ParsedOutcome(gen_id=gen_id, metadata=parsed_meta, reused=False)
