"""Parsers turning a raw model response into the parsed text (and, for evaluations, a score).

A parser is a function ``str -> ParseResult`` registered by name for one or more stages with
:func:`register_parser`; templates name their parser in ``<stage>_templates.csv`` and the stage
code looks it up with :func:`get_parser`. Registered parsers:

- draft: ``identity`` (default), ``strip_thinking``, ``essay_idea_last`` (strict: the last
  ``<essay-idea>`` block, the highest ``stage="N"`` winning), ``essay_idea_last_lenient`` (falls
  back to the response without thinking sections), and the established DayDreaming tool's
  ``essay_block`` (the *first* ``<essay>`` block, to the end of the text when its closing tag is
  missing) and ``essay_block_lenient`` (drop thinking sections, then ``essay_block``, else the
  whole text).
- essay: ``identity`` (default), ``strip_thinking``, ``essay_block`` (strict: the last
  ``<essay>`` block), ``essay_block_lenient``.
- evaluation: ``final_score`` (default), ``in_last_line``; their rules are documented in
  :mod:`daydreaming_dagster.parsers._scores`.
- comparison: ``pairwise_verdict`` (default): the judge's final ``WINNER: A|B|tie`` line,
  parsed text exactly ``A``, ``B`` or ``tie``; rules in
  :mod:`daydreaming_dagster.parsers._verdicts`.

A parser that finds nothing raises :class:`ParseError`.
"""

from __future__ import annotations

from . import _scores, _text_parsers, _verdicts  # noqa: F401  (importing registers the parsers)
from ._registry import (
    DEFAULT_PARSERS,
    ParseError,
    Parser,
    ParseResult,
    get_parser,
    parser_names,
    register_parser,
)
from ._text import find_thinking, strip_thinking_text, tagged_blocks
from ._text_parsers import last_tagged_block, lenient_tagged_block

__all__ = [
    "DEFAULT_PARSERS",
    "ParseError",
    "ParseResult",
    "Parser",
    "find_thinking",
    "get_parser",
    "last_tagged_block",
    "lenient_tagged_block",
    "parser_names",
    "register_parser",
    "strip_thinking_text",
    "tagged_blocks",
]
