"""Evaluation parsers: find the evaluator's final declared score and its scale.

Two parsers, sharing one set of rules:

``final_score`` (the evaluation default)
    Looks through the whole response (thinking sections removed) for the evaluator's *final*
    declaration, even when explanation follows it.
``in_last_line``
    The same rules, and the winning declaration must sit within the last three non-empty lines,
    for templates that demand the score at the very end (stricter: a score followed by more than
    two lines of notes fails, and so does a response whose final declaration comes early even
    when a criterion score sits at the end).

Rules, in order of application:

1. **Thinking.** ``<think>…</think>`` / ``<thinking>…</thinking>`` sections are ignored, as is a
   leading section whose ``<think>`` opener is missing (text up to a stray ``</think>``) and an
   unclosed trailing ``<think>``. Only if nothing is declared outside thinking, a *labelled*
   declaration inside an unclosed trailing section is accepted (``details`` says so).
2. **Markdown noise** is removed line by line before matching: bold/italic markers, backticks,
   header ``#``s, quote ``>``, list bullets and numbers, table pipes (a pipe separates label and
   value like a colon), JSON quotes, underscores (``final_score`` reads as ``final score``).
3. **Labelled declarations** (tier 1). A line that *starts* with a score label:
   ``Score``, ``Rating``, ``Grade``, ``Mark``, ``Total``, ``Total points``, optionally qualified by
   up to three of *final, total, overall, aggregate, composite, weighted, adjusted, rounded,
   combined, holistic, average, revised, updated, corrected, evaluation, essay, my, the*
   (``Final Score``, ``Overall rating``, ``My final score``), or ``Final``,
   ``Final answer|verdict|result|evaluation|assessment``, ``Overall``,
   ``Overall evaluation|assessment|verdict``; an optional parenthetical
   (``Score (0-10):``), a separator (``:``, ``=``, ``|``, dash, ``is``, ``of``), then the value
   ``N``, ``N/D``, ``N out of D`` or ``N (out of D)``. Without a separator a denominator is
   required (``## Final Score 8/10``), so ``Evaluation 2:`` is no score.
   Also tier 1: a label alone on its line with the value starting the next non-empty line
   (``### Final Score:`` / ``**8/10**``); the same labels with *final/total/overall* in the middle
   of a sentence (``…so my final score is 7/10.``); a rounding line (``Rounded to the nearest
   whole number: 7``); ``\\boxed{7}``; ``<score>7</score>``. A number followed by a word that
   is not score talk (``Total: 3 criteria met``, ``Total: 800 words``) is no value.
   Criterion labels (``Core Concepts: 3/5``, ``- Originality: 2/3``) are not score labels, and
   sub-scores never count: a value whose denominator is neither 10 nor 9 is skipped.
4. **Arithmetic and rounding inside a declaration.** When the value is an expression
   (``Total: 2 + 3 + 2 = 7``, ``Final Score = (3+2+2) = 7``) the number after the last ``=`` is
   the value. When a conversion or rounding follows the value (``6.5/10 → rounded to 7/10``,
   ``13/20 → 6.5/10``, ``6.5 (rounded to 7)``), the last converted value is the declaration and
   ``details['rounded_from']`` keeps the first. Free-standing arithmetic (``2 + 3 + 2 = 7``)
   is never a declaration.
5. **Which one wins.** The last tier-1 declaration in the text, except that after a declaration
   labelled *final* or *overall*, a later bare ``Score: N`` (``Rating``, ``Grade``, ``Mark``) on a
   list item or below a new heading is a criterion score and skipped (``Final Score: 7`` …
   ``### Originality`` / ``Score: 2`` gives 7; ``Final Score: 6.5`` … ``SCORE: 7`` gives 7).
   If there is no tier-1 declaration, the last
   rating sentence (tier 2: ``I would rate this essay 7/10``, ``it deserves a 7 out of 10``; a
   denominator is required; hypotheticals such as ``it could earn a 9/10`` are not verdicts).
   If there is none, a last non-empty line that is only a number (tier 3: ``7/10``, ``**8**``).
6. **Scale.** ``"0-10"`` when the winning value is written out of 10, ``"0-9"`` when out of 9.
   Without a denominator, the last scale mention anywhere in the response decides (``0-9``,
   ``0–10``, ``1 to 10``, ``out of 9``, ``N/9``, ``9-point scale``; dates such as 3/9/2024 are
   not mentions); with none, ``"0-10"``
   (``details['scale_source']`` is ``denominator``, ``mention`` or ``default``).
7. **Range.** The winning score must lie in ``[0, 10]`` (``0-10``) or ``[0, 9]`` (``0-9``);
   otherwise (``12/10``, ``Score: 15``) the response is a :class:`ParseError`, never a silent
   fallback to an earlier declaration.

Known limits: a bare ``Score: N`` criterion line after the final declaration that is neither a
list item nor under a new heading still wins (nothing distinguishes it from a final
``SCORE: N``); other scales (out of 5, out of 100) are not converted but rejected; scores in
words (``seven``) or stars are not read.

All matching is line by line with anchored or bounded patterns, so parsing is linear in the
response length.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

from ._registry import ParseError, ParseResult, register_parser
from ._text import find_thinking, remove_spans

_NUM = r"\d+(?:\.\d+)?"
# N, N/D, N / D, N out of D, N (out of D), N of D
_VALUE = re.compile(
    rf"(?:an?\s+)?(?P<num>{_NUM})(?![\d.]\d)"
    rf"(?:\s*\(?\s*(?:/|out\s+of\b|of\b)\s*(?P<den>{_NUM})\s*\)?)?",
    re.IGNORECASE,
)
_QUALIFIER = (
    r"(?:final|total|overall|aggregate|composite|weighted|adjusted|rounded|combined|holistic"
    r"|average|revised|updated|corrected|evaluation|essay|my|the)"
)
_LABEL = (
    rf"(?P<label>(?:{_QUALIFIER}\s+){{0,3}}(?:score|rating|grade|mark|total\s+points|total)"
    r"|final(?:\s+(?:answer|verdict|result|evaluation|assessment))?"
    r"|overall(?:\s+(?:evaluation|assessment|verdict))?)\b"
)
_SEPARATOR = (
    r"(?P<sep>\s*(?:\([^()]{0,40}\)\s*)?"
    r"(?:(?:[:=|：\-–—]|\bis\b|\bof\b|\bwould\s+be\b|\bequals\b)\s*){0,3})"
)
_LINE_LABEL = re.compile(_LABEL + _SEPARATOR, re.IGNORECASE)
_INLINE_LABEL = re.compile(
    r"\b(?P<label>(?:final|total|overall)\s+(?:score|rating|grade|mark))\b"
    r"(?P<sep>\s*(?:(?:[:=：]|\bis\b|\bof\b|\bwould\s+be\b|\bat\b|\bas\b)\s*){1,3})",
    re.IGNORECASE,
)
_ROUNDING_LINE = re.compile(
    r"(?:the\s+)?(?:final\s+)?(?:score\s+)?(?:rounded|rounding)\b(?:\s+(?:up|down))?"
    r"[^0-9\n]{0,40}?(?:\bto\b|[:=→])\s*(?=(?:an?\s+)?\d)",
    re.IGNORECASE,
)
_CONVERSION = re.compile(
    r"(?:→|->|=>|⇒|≈|\brounded\s+(?:up\s+|down\s+)?to\b|\brounds?\s+(?:up\s+|down\s+)?to\b"
    r"|\brounding\s+(?:up\s+|down\s+)?to\b)\s*:?\s*",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\boxed\{\s*([^{}]{0,30})\}")
_PROSE = re.compile(
    r"\b(?:rate|rates|rated|rating|give|gives|giving|assign|assigns|award|awards|score|scores"
    r"|deserves?|earns?|merits?|warrants?)\b[^.\n]{0,40}?(?<![\d.])"
    rf"(?P<num>{_NUM})\s*(?:/|out\s+of\b)\s*(?P<den>{_NUM})",
    re.IGNORECASE,
)
_HYPOTHETICAL = re.compile(
    r"\b(?:could|might|may|can|should|if|unless|would\s+have)\b", re.IGNORECASE
)
_ARITHMETIC_NEXT = re.compile(r"\s*[+\-×x÷*]\s*[\d(]")
# Words that may follow a score ("7 points", "7 out of 10", "7 because…"); any other word
# ("Total: 3 criteria met", "Total: 800 words") means the number counts something else.
_NEXT_WORD = re.compile(r"\s*(%|[^\W\d_]+)")
_WORDS_AFTER_SCORE = frozenset(
    "point points pts out of on overall rounded and but because since given as which with is "
    "in".split()
)
_XML_SCORE = re.compile(r"<(score|final[_ -]?score|rating|grade)\s*>\s*([^<]{0,40})</\1\s*>", re.I)
_HEADING = re.compile(r"^\s*(?:#{1,6}\s|\*\*[^*]+\*\*:?\s*$|__[^_]+__:?\s*$)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]\s|\d{1,2}[.)]\s)|^\s{2,}\S")
_BARE_LABEL = re.compile(r"(?:score|rating|grade|mark)", re.IGNORECASE)
_FINAL_LABEL = re.compile(r"\b(?:final|overall)\b", re.IGNORECASE)
_SCALE_MENTION = re.compile(
    r"\b[01]\s*(?:-|–|—|to)\s*(?P<a>9|10)\b(?![/.]\d)|\bout\s+of\s+(?P<b>9|10)\b"
    r"|(?<![\d/])\d{1,2}(?:\.\d+)?\s*/\s*(?P<c>9|10)\b(?![/.]\d)"
    r"|\b(?P<d>9|10)[- ]point\s+scale\b",
    re.IGNORECASE,
)

# Line clean-up: why each step exists is in rule 2 of the module docstring.
_MULTIPLY = re.compile(r"(?<=\d)\s*\*\s*(?=\d)")
_DECORATION = re.compile(r"[*`~\"]+")
_LEADING = re.compile(r"^(?:[\s#>\-+•·{\[(|→⇒=]|\d{1,2}[.)]\s)+")
_SPACES = re.compile(r"\s+")

_SCALES = {10.0: "0-10", 9.0: "0-9"}
_SCALE_MAX = {"0-10": 10.0, "0-9": 9.0}
_WINDOW_LINES = 3
# A declaration (label, value, arithmetic, conversions) fits in this many characters; reading
# values from bounded slices keeps many labels on one huge line linear, not quadratic.
_SPAN = 300


def _clean(line: str) -> str:
    """A line without markdown decoration, whitespace collapsed (rule 2)."""
    line = _MULTIPLY.sub(" × ", line)
    line = _DECORATION.sub("", line).replace("_", " ")
    line = _LEADING.sub("", line)
    return _SPACES.sub(" ", line).strip().rstrip("|").strip()


@dataclass(frozen=True)
class _Value:
    num: float
    den: float | None
    end: int
    rounded_from: float | None = None


@dataclass(frozen=True)
class _Candidate:
    tier: int
    line: int
    col: int
    rule: str
    value: _Value
    label: str | None = None


@dataclass
class _Scan:
    candidates: list[_Candidate] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    headings: list[int] = field(default_factory=list)
    """Indices of heading lines (``## Originality``, a line that is only bold text)."""
    list_items: set[int] = field(default_factory=set)
    """Indices of list-item or indented lines."""


def _read_value(text: str) -> _Value | None:
    """The value at the start of ``text``: a plain number or fraction, an arithmetic expression
    (its result after the last ``=``), followed by any conversions (``→ 7``, ``rounded to 7``)."""
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    match = _VALUE.match(stripped)
    expression = stripped.startswith("(") or (
        match is not None and _ARITHMETIC_NEXT.match(stripped, match.end()) is not None
    )
    if expression:
        eq = stripped.rfind("=")
        if eq < 0 or stripped[eq - 1 : eq + 2] == "=>" or stripped[eq : eq + 2] == "=>":
            return None
        inner = _read_value(stripped[eq + 1 :])
        if inner is None:
            return None
        return _Value(inner.num, inner.den, offset + eq + 1 + inner.end, inner.rounded_from)
    if match is None or _counts_something_else(stripped, match.end()):
        return None
    value = _Value(float(match["num"]), _float(match["den"]), offset + match.end())
    return _apply_conversions(text, value)


def _counts_something_else(text: str, end: int) -> bool:
    word = _NEXT_WORD.match(text, end)
    return word is not None and word.group(1).lower() not in _WORDS_AFTER_SCORE


def _apply_conversions(text: str, value: _Value) -> _Value:
    """Follow ``→ N`` / ``rounded to N`` after a value: the last converted value wins."""
    first = value.num
    position = value.end
    current = value
    while True:
        conversion = _CONVERSION.search(text, position)
        if conversion is None:
            break
        match = _VALUE.match(text, conversion.end())
        position = conversion.end()
        if match is None:
            continue
        current = _Value(float(match["num"]), _float(match["den"]), match.end(), first)
        position = match.end()
    if current.rounded_from is not None and current.rounded_from == current.num:
        return _Value(current.num, current.den, current.end)
    return current


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _accept(scan: _Scan, candidate: _Candidate, raw_line: str) -> None:
    """Keep a candidate unless its denominator marks it as a sub-score (rule 3)."""
    den = candidate.value.den
    if den is not None and den not in _SCALES:
        scan.skipped.append(
            f"line {candidate.line + 1} {raw_line.strip()[:80]!r} (out of {den:g} is a sub-score "
            "or an unsupported scale; expected out of 10 or out of 9)"
        )
        return
    scan.candidates.append(candidate)


def _bare_number(clean: str) -> _Value | None:
    """A line that is only a value (``7``, ``7/10``, ``8 (out of 10)``, ``7 points.``)."""
    match = _VALUE.match(clean)
    if match is None:
        return None
    rest = clean[match.end() :].strip()
    if rest and not re.fullmatch(r"(?:points?|pts)?\s*[.!]?", rest, re.IGNORECASE):
        return None
    return _Value(float(match["num"]), _float(match["den"]), match.end())


def _next_line_value(clean: str) -> _Value | None:
    """The value starting the line after a bare label: a number followed by nothing, punctuation
    or a conversion (``8/10``, ``6.5/10 → rounded to 7/10``, ``7 – a solid essay``)."""
    match = _VALUE.match(clean)
    if match is None:
        return None
    rest = clean[match.end() :]
    if rest.strip() and not re.match(r"\s*(?:[(\[—–\-.,;:!→=≈]|points?\b|pts\b|rounded\b)", rest):
        return None
    return _read_value(clean[:_SPAN])


def _scan_line(scan: _Scan, lines: list[str], cleaned: list[str], index: int) -> None:
    """Collect every declaration on line ``index`` (rules 3 and 4)."""
    raw, clean = lines[index], cleaned[index]
    inline_from = 0
    head = _LINE_LABEL.match(clean)
    if head is not None:
        rest = clean[head.end() :]
        if not rest.strip():
            following = next((j for j in range(index + 1, len(lines)) if cleaned[j]), None)
            if following is not None:
                value = _next_line_value(cleaned[following])
                if value is not None:
                    _accept(
                        scan, _Candidate(1, index, 0, "label_next_line", value, head["label"]), raw
                    )
        else:
            value = _read_value(rest[:_SPAN])
            if value is not None and (head["sep"].strip() or value.den is not None):
                _accept(scan, _Candidate(1, index, 0, "label", value, head["label"]), raw)
                inline_from = head.end() + value.end
    else:
        rounding = _ROUNDING_LINE.match(clean)
        if rounding is not None:
            value = _read_value(clean[rounding.end() : rounding.end() + _SPAN])
            if value is not None:
                _accept(scan, _Candidate(1, index, 0, "rounding", value, "rounded"), raw)
                inline_from = rounding.end() + value.end
    for match in _INLINE_LABEL.finditer(clean, inline_from):
        value = _read_value(clean[match.end() : match.end() + _SPAN])
        if value is not None:
            _accept(
                scan,
                _Candidate(1, index, match.start(), "inline_label", value, match["label"]),
                raw,
            )
    for match in _XML_SCORE.finditer(raw):
        value = _read_value(_clean(match.group(2)))
        if value is not None:
            _accept(
                scan, _Candidate(1, index, match.start(), "xml_tag", value, match.group(1)), raw
            )
    for match in _BOXED.finditer(raw):
        value = _read_value(_clean(match.group(1)))
        if value is not None:
            _accept(scan, _Candidate(1, index, match.start(), "boxed", value, "boxed"), raw)
    for match in _PROSE.finditer(clean, inline_from):
        if _HYPOTHETICAL.search(clean, max(0, match.start() - 30), match.start()):
            continue  # "it could earn a 9/10 if…" is not a verdict
        value = _Value(float(match["num"]), _float(match["den"]), match.end())
        _accept(scan, _Candidate(2, index, match.start(), "prose", value), raw)


def _scan(text: str) -> tuple[_Scan, list[str], list[int]]:
    """All declarations of ``text``; also its lines and the indices of the non-empty ones."""
    lines = text.split("\n")
    cleaned = [_clean(line) for line in lines]
    non_empty = [i for i, c in enumerate(cleaned) if c]
    scan = _Scan()
    for index in non_empty:
        if _HEADING.match(lines[index]) and not _LINE_LABEL.match(cleaned[index]):
            scan.headings.append(index)
        if _LIST_ITEM.match(lines[index]):
            scan.list_items.add(index)
        _scan_line(scan, lines, cleaned, index)
    if non_empty:
        last = non_empty[-1]
        value = _bare_number(cleaned[last])
        if value is not None:
            _accept(scan, _Candidate(3, last, 0, "bare_number", value), lines[last])
    return scan, lines, non_empty


def _is_criterion_score(scan: _Scan, final: _Candidate, later: _Candidate) -> bool:
    """A bare ``Score: N`` after an explicit final/overall declaration, on a list item or below a
    new heading, scores a criterion (rule 5), not the essay."""
    if later.rule != "label" or not _BARE_LABEL.fullmatch(later.label or ""):
        return False
    if not _FINAL_LABEL.search(final.label or ""):
        return False
    if later.line in scan.list_items:
        return True
    # Headings are collected in line order: the first one after the final decides.
    after = bisect.bisect_right(scan.headings, final.line)
    return after < len(scan.headings) and scan.headings[after] < later.line


def _pick(scan: _Scan) -> _Candidate | None:
    for tier in (1, 2, 3):
        tiered = sorted(
            (c for c in scan.candidates if c.tier == tier), key=lambda c: (c.line, c.col)
        )
        if not tiered:
            continue
        winner = tiered[0]
        for candidate in tiered[1:]:
            if _is_criterion_score(scan, winner, candidate):
                scan.skipped.append(
                    f"line {candidate.line + 1} (a criterion score after the final declaration)"
                )
                continue
            winner = candidate
        return winner
    return None


def _scale(value: _Value, text: str) -> tuple[str, str]:
    if value.den is not None:
        return _SCALES[value.den], "denominator"
    mentions = list(_SCALE_MENTION.finditer(text))
    if mentions:
        last = mentions[-1]
        top = next(g for g in last.group("a", "b", "c", "d") if g is not None)
        return _SCALES[float(top)], "mention"
    return "0-10", "default"


def _render(score: float) -> str:
    return f"{score:g}"


def _parse_score(text: str, window: int | None, parser_name: str) -> ParseResult:
    thinking = find_thinking(text)
    visible = remove_spans(text, thinking.spans, keep_lines=True)
    scan, lines, non_empty = _scan(visible)
    winner = _pick(scan)
    note: str | None = None
    if winner is None and thinking.unclosed:
        # A model that never closed <think> may still have declared its score in there.
        inside = remove_spans(text, thinking.spans[:-1], keep_lines=True)
        inside_scan, inside_lines, inside_non_empty = _scan(inside)
        inside_scan.candidates = [c for c in inside_scan.candidates if c.tier == 1]
        inside_winner = _pick(inside_scan)
        if inside_winner is not None:
            scan, lines, non_empty, winner = (
                inside_scan,
                inside_lines,
                inside_non_empty,
                inside_winner,
            )
            note = "declared inside an unclosed <think> section"
    if winner is None:
        message = (
            "no final score found in the response: looked for a labelled declaration such as "
            "'SCORE: 7' or 'Final Score: 7/10', a rating sentence such as 'I rate it 7/10' and a "
            "last line holding only a number"
        )
        if scan.skipped:
            message += "; skipped " + "; ".join(scan.skipped[-5:])
        raise ParseError(message)
    if window is not None and winner.line < non_empty[max(0, len(non_empty) - window)]:
        raise ParseError(
            f"the final score is declared on line {winner.line + 1} "
            f"({lines[winner.line].strip()[:80]!r}), not within the last {window} non-empty lines "
            f"that {parser_name} reads; use final_score for responses with notes after the score"
        )
    value = winner.value
    scale, scale_source = _scale(value, visible if note is None else text)
    matched = lines[winner.line].strip()
    if not (0.0 <= value.num <= _SCALE_MAX[scale]):
        shown = _render(value.num) + (f"/{value.den:g}" if value.den is not None else "")
        raise ParseError(
            f"final score {shown} on line {winner.line + 1} ({matched[:80]!r}) is outside the "
            f"{scale} scale"
        )
    details: dict[str, Any] = {
        "rule": winner.rule,
        "line": winner.line + 1,
        "matched": matched[:200],
        "denominator": value.den,
        "scale_source": scale_source,
        "candidates": len(scan.candidates),
    }
    if winner.label:
        details["label"] = winner.label
    if value.rounded_from is not None:
        details["rounded_from"] = value.rounded_from
    if scan.skipped:
        details["skipped"] = scan.skipped[-5:]
    if thinking.spans:
        details["thinking_sections_removed"] = len(thinking.spans)
    if note:
        details["note"] = note
    return ParseResult(text=_render(value.num), score=value.num, scale=scale, details=details)


@register_parser("evaluation", "final_score")
def final_score(text: str) -> ParseResult:
    """The evaluator's final declared score anywhere in the response (module rules 1-7)."""
    return _parse_score(text, None, "final_score")


@register_parser("evaluation", "in_last_line")
def in_last_line(text: str) -> ParseResult:
    """The score declared within the last three non-empty lines (module rules 1-7)."""
    return _parse_score(text, _WINDOW_LINES, "in_last_line")
