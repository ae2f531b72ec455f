"""Text helpers shared by the parsers: model "thinking" sections and tagged blocks.

Everything here scans tags with ``re.finditer`` over short, bounded patterns and pairs them in
Python, so the cost stays linear in the response length (no regex spanning open to close tag,
which backtracks quadratically on many unclosed tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# <think> and <thinking>, the tags reasoning models (DeepSeek R1, QwQ, Qwen3...) wrap reasoning in.
_THINK_TAG = re.compile(r"<(/?)(?:think|thinking)\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class ThinkingSpans:
    """Where the thinking sections of a response are."""

    spans: tuple[tuple[int, int], ...]
    """``(start, end)`` character ranges covering each thinking section including its tags."""
    unclosed: bool = False
    """The last section opened with ``<think>`` and never closed (typically truncated output)."""
    missing_opener: bool = False
    """A ``</think>`` had no opener: everything before it was taken as thinking (some providers
    strip the opening tag)."""


def find_thinking(text: str) -> ThinkingSpans:
    """Locate ``<think>…</think>`` sections, an unclosed trailing ``<think>`` and a leading
    section whose opening tag is missing (text up to a stray ``</think>``)."""
    spans: list[tuple[int, int]] = []
    depth = 0
    start = 0
    missing_opener = False
    for match in _THINK_TAG.finditer(text):
        if not match.group(1):
            if depth == 0:
                start = match.start()
            depth += 1
        elif depth == 0:
            # A closer without an opener: the response began inside a thinking section.
            spans = [(0, match.end())]
            missing_opener = True
        else:
            depth -= 1
            if depth == 0:
                spans.append((start, match.end()))
    unclosed = depth > 0
    if unclosed:
        spans.append((start, len(text)))
    return ThinkingSpans(tuple(spans), unclosed=unclosed, missing_opener=missing_opener)


def remove_spans(text: str, spans: tuple[tuple[int, int], ...], *, keep_lines: bool = False) -> str:
    """Cut ``spans`` out of ``text``; with ``keep_lines`` each cut becomes as many newlines as it
    held, so line numbers of the rest stay those of the original."""
    if not spans:
        return text
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        if keep_lines:
            pieces.append("\n" * text.count("\n", start, end))
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def strip_thinking_text(text: str) -> str:
    """``text`` without its thinking sections, stripped of surrounding whitespace."""
    return remove_spans(text, find_thinking(text).spans).strip()


@dataclass(frozen=True)
class TaggedBlock:
    """One ``<tag attr="…">content</tag>`` block."""

    content: str
    """The text between the tags, stripped."""
    attrs: dict[str, str] = field(default_factory=dict)
    """The opening tag's attributes (names lower-cased)."""
    start: int = 0
    """Offset of the opening tag in the searched text."""
    index: int = 0
    """Position of the block among the complete blocks found (0 = first)."""


_ATTR = re.compile(r"""([A-Za-z_][\w.-]{0,64})\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


def _tag_pattern(tag: str) -> re.Pattern[str]:
    name = re.escape(tag)
    # Opening tags may carry attributes; the bound keeps a stray '<tag' without '>' cheap.
    return re.compile(rf"<({name})\b([^<>]{{0,500}})>|</{name}\s*>", re.IGNORECASE)


def tagged_blocks(text: str, tag: str) -> tuple[list[TaggedBlock], int]:
    """All complete ``<tag …>…</tag>`` blocks of ``text`` in order, and how many opening tags
    were never closed (an unclosed block is not returned: its content may be cut short)."""
    blocks: list[TaggedBlock] = []
    unclosed = 0
    open_match: re.Match[str] | None = None
    for match in _tag_pattern(tag).finditer(text):
        if match.group(1) is not None:
            if open_match is not None:
                unclosed += 1
            open_match = match
            continue
        if open_match is None:
            continue  # a closing tag without an opener carries no block
        attrs = {
            m.group(1).lower(): next(g for g in m.group(2, 3, 4) if g is not None)
            for m in _ATTR.finditer(open_match.group(2))
        }
        blocks.append(
            TaggedBlock(
                content=text[open_match.end() : match.start()].strip(),
                attrs=attrs,
                start=open_match.start(),
                index=len(blocks),
            )
        )
        open_match = None
    if open_match is not None:
        unclosed += 1
    return blocks, unclosed


def _stage_number(block: TaggedBlock) -> float | None:
    raw = block.attrs.get("stage")
    if raw is None:
        return None
    try:
        return float(raw.strip())
    except ValueError:
        return None


def pick_block(blocks: list[TaggedBlock]) -> TaggedBlock | None:
    """The block that wins: the highest numeric ``stage`` attribute (ties: the last such block);
    when no block has a numeric ``stage``, the last block. Blocks without a numeric ``stage``
    rank below every staged block. Empty blocks never win."""
    candidates = [b for b in blocks if b.content]
    if not candidates:
        return None

    def rank(block: TaggedBlock) -> tuple[float, int]:
        number = _stage_number(block)
        return (float("-inf") if number is None else number, block.index)

    return max(candidates, key=rank)
