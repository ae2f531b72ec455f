"""The reuse rule of each phase, in one place (seed 002).

The stage functions (:mod:`.prompt`, :mod:`.raw`, :mod:`.parsed`) and the planner
(:mod:`daydreaming_dagster.planning`) both ask these functions whether a phase's artefact is
reused, so a plan never disagrees with what a run does. Each rule is answered by the data layer
(what is on disk, whether it was rejected); the stage settings add ``force``.

A phase that regenerates clears what the next phases derived from its old artefact (the data
layer does that on write), so "prompt rendered anew" implies "raw called again" implies
"parsed again": callers model that cascade, these functions answer one phase each.
"""

from __future__ import annotations

from collections.abc import Callable

from ..types import Stage
from .context import StageContext
from .settings import StageSettings


def prompt_reusable(ctx: StageContext, stage: Stage, gen_id: str, text: str, settings: StageSettings) -> bool:
    """The stored prompt is kept (with everything derived from it) when it equals ``text``,
    the freshly rendered prompt, and the stage is not forced."""
    return ctx.layer.prompt_matches(stage, gen_id, text, force=settings.force)


def raw_reusable(ctx: StageContext, stage: Stage, gen_id: str, settings: StageSettings,
                 served_by: Callable[[str], str | None] | None = None) -> bool:
    """Raw output is reused when it exists with its metadata, was not rejected, the stage is
    not forced, and it is not synthetic text for a model a real provider serves now
    (``served_by``: model id -> provider answering it now, as the model client says)."""
    return ctx.layer.raw_exists(stage, gen_id, force=settings.force, served_by=served_by)


def parsed_reusable(ctx: StageContext, stage: Stage, gen_id: str, settings: StageSettings) -> bool:
    """Parsed output is reused when it exists with its metadata, parsing succeeded, and the
    stage is not forced."""
    return ctx.layer.parsed_exists(stage, gen_id, force=settings.force)
