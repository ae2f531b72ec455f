"""The parser registry: result type, error type and name -> function lookup per stage."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, DaydreamError
from ..types import STAGES, Stage


@dataclass(frozen=True)
class ParseResult:
    """What a parser extracted from one raw model response."""

    text: str
    """The text written to ``parsed.txt``; for evaluations the score rendered as text
    (``"7"``, ``"7.5"``)."""
    score: float | None = None
    """The final declared score (evaluations only)."""
    scale: str | None = None
    """The score's scale, ``"0-10"`` or ``"0-9"`` (evaluations only)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra facts for ``parsed_metadata.json``: the rule that matched, the line, any rounding."""


class ParseError(DaydreamError, ValueError):
    """A parser found no usable result in a response; the message says what it looked for."""


Parser = Callable[[str], ParseResult]
"""A parser takes the raw response text and returns a :class:`ParseResult` (or raises
:class:`ParseError`)."""

DEFAULT_PARSERS: dict[Stage, str] = {
    "draft": "identity",
    "essay": "identity",
    "evaluation": "final_score",
    "comparison": "pairwise_verdict",
}
"""The parser a stage uses when its template names none."""

_REGISTRY: dict[Stage, dict[str, Parser]] = {stage: {} for stage in STAGES}


def _check_stage(stage: object) -> Stage:
    if not isinstance(stage, str) or stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}")
    return stage  # type: ignore[return-value]


def register_parser(stage: Stage | Iterable[Stage], name: str) -> Callable[[Parser], Parser]:
    """Decorator registering a parser under ``name`` for one stage or several stages.

    Raises ``ValueError`` when the name is already taken for a stage (two parsers must never
    silently shadow each other).
    """
    stages = [stage] if isinstance(stage, str) else list(stage)
    checked = [_check_stage(s) for s in stages]

    def decorator(func: Parser) -> Parser:
        for s in checked:
            if name in _REGISTRY[s]:
                raise ValueError(f"parser {name!r} is already registered for stage {s!r}")
            _REGISTRY[s][name] = func
        return func

    return decorator


def parser_names(stage: Stage) -> list[str]:
    """The names of the parsers registered for ``stage``, sorted."""
    return sorted(_REGISTRY[_check_stage(stage)])


def get_parser(stage: Stage, name: str | None) -> tuple[str, Parser]:
    """Look up a parser by name for a stage.

    ``None`` or an empty name gives the stage's default parser (:data:`DEFAULT_PARSERS`).
    Returns ``(resolved_name, parser)``. Raises :class:`~daydreaming_dagster.errors.ConfigError`
    for an unknown stage or an unknown parser name, listing the names known for that stage.
    """
    checked = _check_stage(stage)
    resolved = (name or "").strip() or DEFAULT_PARSERS[checked]
    parsers = _REGISTRY[checked]
    if resolved not in parsers:
        raise ConfigError(
            f"unknown {checked} parser {resolved!r}; known {checked} parsers: "
            f"{', '.join(sorted(parsers))} (in {checked}_templates.csv an empty 'parser' selects "
            f"the default, {DEFAULT_PARSERS[checked]})"
        )
    return resolved, parsers[resolved]
