"""Prompt phase: turn a generation's metadata into the text its raw phase consumes.

Semantics of seed 001's ``stage_input_asset`` / ``compute_prompt_values``: copy mode copies the
parent's parsed text; otherwise the stage template renders with the variables of DESIGN §2
(``concepts``; ``draft_block``/``links_block``; ``response``). Templates render in a sandboxed
Jinja2 environment with ``StrictUndefined``, so a template can neither reach Python internals
nor silently render a missing variable as an empty string.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ..data_layer import GenerationMetadata, GensDataLayer, resolve_generation_metadata
from ..errors import GenerationFailure
from ..types import Stage
from .context import StageContext
from .raw import blocked
from .reuse import prompt_reusable
from .settings import StageSettings


class TemplateRenderError(GenerationFailure):
    """A template failed to render (missing variable, syntax error)."""


@functools.cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text, not HTML
        keep_trailing_newline=True,
    )


@functools.lru_cache(maxsize=256)
def _compiled(template_text: str) -> jinja2.Template:
    # Compiling is the expensive part of rendering; a run renders each template many times.
    return _environment().from_string(template_text)


class TemplateError(ValueError):
    """A template that cannot render; ``line`` is the template line at fault when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _template_line(exc: BaseException) -> int | None:
    """The template line a render-time error was raised at: Jinja rewrites the traceback so the
    template's own frames carry its file name (``<template>`` for a string) and line."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_template(template_text: str, variables: dict[str, Any], *, template_name: str) -> str:
    """Render ``template_text``; a missing variable, bad syntax or an unsafe operation raises
    :class:`TemplateError` (a ``ValueError``) naming the template, the line and the variable."""
    try:
        return _compiled(template_text).render(**variables)
    except jinja2.UndefinedError as exc:
        line = _template_line(exc)
        at = f" at line {line}" if line is not None else ""
        raise TemplateError(
            f"template {template_name!r} uses an undefined variable{at}: {exc.message}; "
            f"available variables: {', '.join(sorted(variables)) or '(none)'}",
            line,
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {template_name!r} has a syntax error at line {exc.lineno}: {exc.message}",
                            exc.lineno) from None
    except jinja2.exceptions.SecurityError as exc:
        line = _template_line(exc)
        at = f" at line {line}" if line is not None else ""
        raise TemplateError(f"template {template_name!r} tried an unsafe operation{at}: {exc}", line) from None


def _read_parent(layer: GensDataLayer, metadata: GenerationMetadata, parent_gen_id: str) -> str:
    assert metadata.parent_stage  # guaranteed by resolve_generation_metadata
    try:
        return layer.read_parsed(metadata.parent_stage, parent_gen_id)
    except FileNotFoundError:
        raise GenerationFailure(
            metadata.stage,
            metadata.gen_id,
            "parent_missing",
            f"parent {metadata.parent_stage}/{parent_gen_id} has no parsed output yet; "
            f"run the {metadata.parent_stage} stage first",
        ) from None


def _parent_parsed_text(layer: GensDataLayer, metadata: GenerationMetadata) -> str:
    assert metadata.parent_gen_id  # guaranteed by resolve_generation_metadata
    return _read_parent(layer, metadata, metadata.parent_gen_id)


ParentText = str | tuple[str, ...]
"""A parent's parsed text, or the texts of every parent in order (comparisons read two)."""


def _comparison_values(ctx: StageContext, metadata: GenerationMetadata, parent_text: ParentText | None) -> dict[str, Any]:
    """``essay_a``/``essay_b`` (parsed essays in the order shown to the judge) and each essay's
    concepts, ``concepts_a``/``concepts_b``."""
    if isinstance(parent_text, tuple):
        texts = parent_text
    else:
        texts = tuple(_read_parent(ctx.layer, metadata, parent) for parent in metadata.parent_gen_ids)
    if len(texts) != 2 or len(metadata.parent_gen_ids) != 2:
        raise GenerationFailure(metadata.stage, metadata.gen_id, "metadata",
                                "a comparison needs exactly two parent essays (parent_gen_ids)")
    values: dict[str, Any] = {"essay_a": texts[0], "essay_b": texts[1]}
    for side, essay_id in zip(("a", "b"), metadata.parent_gen_ids, strict=True):
        values[f"concepts_{side}"] = _essay_concepts(ctx, essay_id)
    return values


def _essay_concepts(ctx: StageContext, essay_id: str) -> list[Any]:
    """The concepts of an essay's combination (empty when its metadata names none)."""
    try:
        combo_id = str(ctx.layer.read_main_metadata("essay", essay_id).get("combo_id") or "")
    except (FileNotFoundError, ValueError):
        return []
    return list(ctx.combination(combo_id).contents) if combo_id else []


def compute_prompt_values(ctx: StageContext, metadata: GenerationMetadata, parent_text: ParentText | None = None) -> dict[str, Any]:
    """Template variables for an ``llm``-mode generation (DESIGN §2); ``parent_text`` stands in
    for the parent's parsed text on disk (the planner passes the text a parse will produce; for
    a comparison, the texts of both essays)."""
    stage = metadata.stage
    if stage == "draft":
        if not metadata.combo_id:
            raise GenerationFailure(stage, metadata.gen_id, "metadata", "draft metadata has no combo_id")
        combination = ctx.combination(metadata.combo_id)
        return {"concepts": combination.contents, "combo_id": combination.combo_id}
    if stage == "comparison":
        return _comparison_values(ctx, metadata, parent_text)
    if parent_text is None:
        parent_text = _parent_parsed_text(ctx.layer, metadata)
    assert isinstance(parent_text, str)
    if stage == "essay":
        return {"draft_block": parent_text, "links_block": parent_text}
    return {"response": parent_text}


def build_prompt(ctx: StageContext, metadata: GenerationMetadata, parent_text: ParentText | None = None) -> str:
    """The prompt text of a generation: the parent's parsed text (copy) or the rendered template.

    ``parent_text`` (default: read from the parent's ``parsed.txt``) lets the planner render
    with the text a pending parse of the parent will produce.
    """
    if metadata.mode == "copy":
        if isinstance(parent_text, tuple):
            raise GenerationFailure(metadata.stage, metadata.gen_id, "metadata", "copy mode takes one parent")
        return parent_text if parent_text is not None else _parent_parsed_text(ctx.layer, metadata)
    ctx.template(metadata.stage, metadata.template_id)  # fails early with the known templates listed
    text = ctx.template_text(metadata.stage, metadata.template_id)
    values = compute_prompt_values(ctx, metadata, parent_text)
    try:
        return render_template(text, values, template_name=f"{metadata.stage}/{metadata.template_id}")
    except ValueError as exc:
        raise TemplateRenderError(metadata.stage, metadata.gen_id, "template", str(exc)) from None


@dataclass(frozen=True)
class PromptOutcome:
    """Result of the prompt phase for one generation."""

    gen_id: str
    text: str
    reused: bool
    """True when the identical prompt was already on disk (raw/parsed kept)."""


def run_prompt_phase(
    ctx: StageContext, stage: Stage, gen_id: str, settings: StageSettings, *, run_id: str = ""
) -> PromptOutcome:
    """Render and persist a generation's prompt; the data layer decides reuse (seed 002).

    A prompt identical to the stored one is reused with everything derived from it; a changed
    prompt (edited template, regenerated parent) replaces it and clears raw and parsed outputs.
    A prompt that cannot be built (template error, unknown template, missing parent or combo,
    malformed metadata) is recorded as the generation's failure and raised as
    :class:`GenerationFailure`.
    """
    try:
        metadata = resolve_generation_metadata(ctx.layer, stage, gen_id)
        text = build_prompt(ctx, metadata)
    except FileNotFoundError:
        raise  # never seeded: nothing to record against
    except (GenerationFailure, ValueError) as exc:
        raise blocked(ctx.layer, stage, gen_id, "prompt", exc, run_id) from None
    reused = prompt_reusable(ctx, stage, gen_id, text, settings)
    if not reused:
        ctx.layer.write_prompt(stage, gen_id, text)
    return PromptOutcome(gen_id=gen_id, text=text, reused=reused)
