"""Parsers for the text stages (draft and essay): tagged blocks, identity, thinking removal."""

from __future__ import annotations

import re
from typing import Any

from ._registry import ParseError, ParseResult, register_parser
from ._text import find_thinking, pick_block, remove_spans, strip_thinking_text, tagged_blocks

_ESSAY_OPEN = re.compile(r"<essay\b[^<>]{0,500}>", re.IGNORECASE)
_ESSAY_CLOSE = re.compile(r"</essay\s*>", re.IGNORECASE)


def _require_text(text: str, what: str) -> str:
    if not text:
        raise ParseError(f"{what} is empty")
    return text


def last_tagged_block(text: str, tag: str) -> ParseResult:
    """Strict: the winning ``<tag>`` block outside thinking sections (see :func:`pick_block`).

    Raises :class:`ParseError` when there is no complete, non-empty block.
    """
    thinking = find_thinking(text)
    visible = remove_spans(text, thinking.spans)
    blocks, unclosed = tagged_blocks(visible, tag)
    chosen = pick_block(blocks)
    if chosen is None:
        reasons = []
        if blocks:
            reasons.append(f"{len(blocks)} <{tag}> block(s) found but all empty")
        if unclosed:
            reasons.append(f"{unclosed} <{tag}> tag(s) never closed (truncated response?)")
        if thinking.spans and tagged_blocks(text, tag)[0]:
            reasons.append(f"<{tag}> blocks appear only inside thinking sections")
        detail = "; ".join(reasons) if reasons else "no such block in the response"
        raise ParseError(f"no complete <{tag}>…</{tag}> block: {detail}")
    details: dict[str, Any] = {
        "rule": f"last_{tag}_block",
        "blocks_found": len(blocks),
        "block_index": chosen.index,
    }
    if "stage" in chosen.attrs:
        details["block_stage"] = chosen.attrs["stage"]
    if unclosed:
        details["unclosed_blocks_ignored"] = unclosed
    if thinking.spans:
        details["thinking_sections_removed"] = len(thinking.spans)
    return ParseResult(text=chosen.content, details=details)


def lenient_tagged_block(text: str, tag: str) -> ParseResult:
    """:func:`last_tagged_block`, falling back to the whole text without thinking sections."""
    try:
        return last_tagged_block(text, tag)
    except ParseError as exc:
        fallback = _require_text(strip_thinking_text(text), "response without thinking sections")
        return ParseResult(
            text=fallback,
            details={
                "rule": "fallback_strip_thinking",
                "fallback": True,
                "fallback_reason": str(exc),
            },
        )


@register_parser("draft", "essay_idea_last")
def essay_idea_last(text: str) -> ParseResult:
    """The last ``<essay-idea>`` block; with ``stage="N"`` attributes the highest N wins
    (ties: the last). No block is a :class:`ParseError`."""
    return last_tagged_block(text, "essay-idea")


@register_parser("draft", "essay_idea_last_lenient")
def essay_idea_last_lenient(text: str) -> ParseResult:
    """Like ``essay_idea_last``, falling back to the whole response minus thinking sections."""
    return lenient_tagged_block(text, "essay-idea")


@register_parser("essay", "essay_block")
def essay_block(text: str) -> ParseResult:
    """The last ``<essay>`` block (strict: no block is a :class:`ParseError`)."""
    return last_tagged_block(text, "essay")


@register_parser("essay", "essay_block_lenient")
def essay_block_lenient(text: str) -> ParseResult:
    """The last ``<essay>`` block, falling back to the whole response minus thinking sections."""
    return lenient_tagged_block(text, "essay")


def first_essay_block(text: str) -> ParseResult:
    """The established DayDreaming tool's draft ``essay_block``: the text of the *first*
    ``<essay>`` block; when its closing tag is missing (a long answer cut short), everything
    after the opening tag. No ``<essay>`` tag, or an empty block, is a :class:`ParseError`."""
    opener = _ESSAY_OPEN.search(text)
    if opener is None:
        raise ParseError("no <essay> tag in the response")
    closer = _ESSAY_CLOSE.search(text, opener.end())
    content = text[opener.end() : closer.start() if closer else len(text)].strip()
    if not content:
        raise ParseError("the first <essay> block is empty")
    details: dict[str, Any] = {"rule": "first_essay_block"}
    if closer is None:
        details["unclosed_block_to_end"] = True
    return ParseResult(text=content, details=details)


@register_parser("draft", "essay_block")
def draft_essay_block(text: str) -> ParseResult:
    """Drafts: :func:`first_essay_block` (the established tool's semantics)."""
    return first_essay_block(text)


@register_parser("draft", "essay_block_lenient")
def draft_essay_block_lenient(text: str) -> ParseResult:
    """Drafts: drop ``<thinking>``/``<think>`` sections, then :func:`first_essay_block`; without
    an ``<essay>`` block, the whole response (minus those sections)."""
    thinking = find_thinking(text)
    visible = remove_spans(text, thinking.spans)
    try:
        result = first_essay_block(visible)
    except ParseError as exc:
        fallback = _require_text(visible.strip(), "response without thinking sections")
        return ParseResult(text=fallback, details={"rule": "fallback_whole_text", "fallback": True,
                                                  "fallback_reason": str(exc),
                                                  "thinking_sections_removed": len(thinking.spans)})
    if thinking.spans:
        result.details["thinking_sections_removed"] = len(thinking.spans)
    return result


@register_parser(("draft", "essay"), "identity")
def identity(text: str) -> ParseResult:
    """The response unchanged except for surrounding whitespace; empty is a :class:`ParseError`."""
    return ParseResult(text=_require_text(text.strip(), "response"), details={"rule": "identity"})


@register_parser(("draft", "essay"), "strip_thinking")
def strip_thinking(text: str) -> ParseResult:
    """The response without ``<think>…</think>`` sections (nor an unclosed or opener-less one)."""
    thinking = find_thinking(text)
    stripped = remove_spans(text, thinking.spans).strip()
    if not stripped:
        what = "response" if not thinking.spans else "response without thinking sections"
        raise ParseError(f"{what} is empty")
    details: dict[str, Any] = {
        "rule": "strip_thinking",
        "thinking_sections_removed": len(thinking.spans),
    }
    if thinking.unclosed:
        details["unclosed_thinking"] = True
    if thinking.missing_opener:
        details["thinking_opener_missing"] = True
    return ParseResult(text=stripped, details=details)
