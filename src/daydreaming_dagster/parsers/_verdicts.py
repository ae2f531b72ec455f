"""The comparison parser ``pairwise_verdict``: the judge's final verdict between essays A and B.

Rules, in order of application:

1. **Thinking.** ``<think>…</think>`` / ``<thinking>…</thinking>`` sections (and an unclosed
   trailing or opener-less one) are ignored: a verdict there is the judge thinking aloud.
2. **Markdown noise** is removed line by line before matching: bold/italic markers, backticks,
   double quotes, header ``#``s, quote ``>``, list bullets and numbers.
3. **A verdict line** starts with a verdict label: ``Winner``, ``Verdict``, ``Decision``,
   ``Choice``, ``Preference``, ``Preferred`` / ``Preferred essay``, ``Better essay``,
   ``Stronger essay``, ``Winning essay``, ``Answer``, ``Result``, optionally qualified by up to two
   of *final, overall, my, the, clear, ultimate* (``Final verdict``, ``The winner``), an optional
   parenthetical (``Winner (A or B):``), then a separator (``:``, ``=``, a dash, ``is``) and the
   value. Without a separator the value must end the line (``Winner Essay B``). A label alone
   on its line (``**Winner:**``) takes its value from the next non-empty line.
   A label that does not start the line (``Winner on novelty: A``, ``Novelty winner: A``) is a
   criterion, not the verdict, and is not read.
4. **The value**, case-insensitive, after optional brackets or quotes: ``A``/``B``, optionally
   named (``Essay A``, ``Response B``, ``Option A``, ``Candidate B``, ``Text A``,
   ``Submission B``), or a tie: ``tie``, ``tied``, ``a tie``, ``it's a tie``, ``draw``,
   ``dead heat``, ``equal``, ``equally good``, ``no preference``, ``no clear winner``.
   Anything may follow the value (``Winner: A — more original``; trailing punctuation), except
   an alternative: ``Winner: A or B``, ``A/B``, ``A, B``, ``A and B``, ``A vs B``,
   ``<A|B|tie>`` make the line **ambiguous**. A lowercase ``a`` followed by a word is the
   article (``Verdict: a tie``, ``Winner: a close call…``), not essay A.
5. **Which one wins.** The last verdict line of the response (judges revise: ``Winner: A`` …
   ``On reflection… Final verdict: B`` gives B). Verdict-labelled lines whose value is unreadable
   (``Verdict: both have merit``) are skipped. If the last verdict line is ambiguous, the
   response is a :class:`ParseError` (never a fall-back to an earlier line); so is a response
   with no verdict line, the message saying what was looked for.

Result: ``text`` is exactly ``A``, ``B`` or ``tie``; ``details`` has ``verdict``, ``line`` (the
original line, stripped), ``line_number`` (1-based, in the response), ``rule``
(``labelled_line`` or ``label_then_next_line``), ``label``, ``verdict_lines`` (how many readable
verdict lines the response had) and ``revised`` (an earlier readable verdict line disagreed).

Matching is line by line on the first :data:`_SPAN` characters of each line with anchored
patterns, so parsing is linear in the response length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from ._registry import ParseError, ParseResult, register_parser
from ._text import find_thinking, remove_spans

VerdictValue = Literal["A", "B", "tie"]

_SPAN = 300
_QUALIFIER = r"(?:final|overall|my|the|clear|ultimate)"
_LABEL = re.compile(
    rf"(?P<label>(?:{_QUALIFIER}\s+){{0,2}}"
    r"(?:winner|winning\s+essay|verdict|decision|choice|preference|preferred(?:\s+essay)?"
    r"|better\s+essay|stronger\s+essay|answer|result))\b"
    r"\s*(?:\([^()]{0,40}\)\s*)?",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"(?:[:=：\-–—]+|\bis\b|\bgoes\s+to\b)\s*", re.IGNORECASE)
_OPENERS = re.compile(r"[\s\[(<{'‘“]*")
_TIE = re.compile(
    r"(?:it['’]?s\s+|it\s+is\s+)?(?:an?\s+)?"
    r"(?:tied?|draw|dead\s+heat|equal(?:ly\s+(?:good|strong|matched))?|no\s+preference"
    r"|no\s+clear\s+winner)\b",
    re.IGNORECASE,
)
_LETTER = re.compile(
    r"(?P<named>(?:essay|response|option|candidate|text|submission)\s+)?(?P<letter>[AB])(?!\w)",
    re.IGNORECASE,
)
_ARTICLE_NEXT = re.compile(r"\s+[A-Za-z]")
_CONNECTOR = re.compile(r"\s*(?:\bor\b|\band\b|\bnor\b|\bvs\b\.?|\bversus\b|[/|,&])\s*", re.I)
_DECORATION = re.compile(r"[*`\"~]+")
_LEADING = re.compile(r"^(?:[\s#>\-+•·]|\d{1,2}[.)]\s)+")
_SPACES = re.compile(r"\s+")
_TAGS = re.compile(r"</?think(?:ing)?\s*>", re.IGNORECASE)
_LOOKED_FOR = (
    "a verdict line such as 'WINNER: A', 'Winner: Essay B' or 'Verdict: tie' "
    "(labels winner/verdict/decision/choice/preference/better essay…, value A, B or tie)"
)


@dataclass(frozen=True)
class _Found:
    """One verdict-labelled line that carried a readable (or ambiguous) value."""

    line_number: int
    line: str
    label: str
    rule: str
    verdict: VerdictValue | None
    """``None`` when the line is ambiguous (``Winner: A or B``)."""


def _clean(line: str) -> str:
    """A line without markdown decoration, whitespace collapsed (rule 2)."""
    line = _DECORATION.sub("", line[:_SPAN])
    line = _LEADING.sub("", line)
    return _SPACES.sub(" ", line).strip()


def _read_value(text: str, pos: int) -> tuple[VerdictValue, int] | None:
    """The verdict value starting at ``text[pos:]`` (after brackets/quotes) and where it ends."""
    pos = _OPENERS.match(text, pos).end()  # type: ignore[union-attr]  # always matches
    tie = _TIE.match(text, pos)
    if tie:
        return "tie", tie.end()
    letter = _LETTER.match(text, pos)
    if letter is None:
        return None
    value = letter.group("letter")
    if not letter.group("named") and value == "a" and _ARTICLE_NEXT.match(text, letter.end()):
        return None  # "a close call": the article, not essay A
    return value.upper(), letter.end()  # type: ignore[return-value]


def _is_alternative(text: str, end: int) -> bool:
    """Whether another value follows ``text[:end]``'s value as an alternative (``A or B``)."""
    connector = _CONNECTOR.match(text, end)
    return connector is not None and _read_value(text, connector.end()) is not None


def _read_line(cleaned: str) -> tuple[str, str, bool] | None:
    """``(label, rest, had_separator)`` when ``cleaned`` starts with a verdict label."""
    label = _LABEL.match(cleaned)
    if label is None:
        return None
    rest = cleaned[label.end():]
    separator = _SEPARATOR.match(rest)
    if separator:
        return label.group("label"), rest[separator.end():], True
    return label.group("label"), rest, False


def _value_of(text: str, *, needs_end: bool) -> tuple[VerdictValue | None, bool]:
    """``(verdict or None, matched)`` for a value text; ``None`` with ``matched`` = ambiguous."""
    read = _read_value(text, 0)
    if read is None:
        return None, False
    value, end = read
    if needs_end and text[end:].strip(" .!)]}>'’\"”"):
        return None, False
    if _is_alternative(text, end):
        return None, True
    return value, True


def _scan(lines: list[str]) -> list[_Found]:
    found: list[_Found] = []
    for index, raw in enumerate(lines):
        cleaned = _clean(raw)
        head = _read_line(cleaned)
        if head is None:
            continue
        label, rest, had_separator = head
        rule = "labelled_line"
        source = index
        if not rest.strip(" .") and had_separator:
            nxt = next((j for j in range(index + 1, len(lines)) if lines[j].strip()), None)
            if nxt is None:
                continue
            rest, rule, source = _clean(lines[nxt]), "label_then_next_line", nxt
            if _read_line(rest) is not None:
                continue  # the next line is a verdict line of its own
        verdict, matched = _value_of(rest, needs_end=not had_separator and rule == "labelled_line")
        if not matched:
            continue
        line_text = raw.strip() if source == index else f"{raw.strip()} {lines[source].strip()}"
        found.append(_Found(source + 1, line_text[:_SPAN], _SPACES.sub(" ", label), rule, verdict))
    return found


@register_parser("comparison", "pairwise_verdict")
def pairwise_verdict(text: str) -> ParseResult:
    """The judge's final verdict, ``A``, ``B`` or ``tie`` (rules in the module docstring).

    Raises :class:`ParseError` when no verdict line is found or the last one is ambiguous.
    """
    thinking = find_thinking(text)
    visible = remove_spans(text, thinking.spans, keep_lines=True)
    found = _scan(visible.splitlines())
    if not found:
        hidden = any(
            _scan(_TAGS.sub("\n", text[start:end]).splitlines()) for start, end in thinking.spans
        )
        where = " (verdict lines appear only inside thinking sections)" if hidden else ""
        raise ParseError(f"no verdict found: looked for {_LOOKED_FOR}{where}")
    last = found[-1]
    if last.verdict is None:
        raise ParseError(
            f"ambiguous final verdict on line {last.line_number}: {last.line!r} names more than "
            f"one outcome; looked for {_LOOKED_FOR}"
        )
    readable = [f for f in found if f.verdict is not None]
    details: dict[str, Any] = {
        "verdict": last.verdict,
        "line": last.line,
        "line_number": last.line_number,
        "rule": last.rule,
        "label": last.label.lower(),
        "verdict_lines": len(readable),
        "revised": any(f.verdict != last.verdict for f in readable),
    }
    if thinking.spans:
        details["thinking_sections_removed"] = len(thinking.spans)
    return ParseResult(text=last.verdict, details=details)
