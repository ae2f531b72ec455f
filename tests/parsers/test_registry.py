"""The parser registry: names per stage, defaults, errors, registration."""

from __future__ import annotations

import pytest

from daydreaming_dagster.errors import ConfigError, DaydreamError
from daydreaming_dagster.parsers import (
    DEFAULT_PARSERS,
    ParseError,
    ParseResult,
    _registry,
    get_parser,
    parser_names,
    register_parser,
)


def test_parser_names_per_stage() -> None:
    assert parser_names("draft") == [
        "essay_block",
        "essay_block_lenient",
        "essay_idea_last",
        "essay_idea_last_lenient",
        "identity",
        "strip_thinking",
    ]
    assert parser_names("essay") == [
        "essay_block",
        "essay_block_lenient",
        "identity",
        "strip_thinking",
    ]
    assert parser_names("evaluation") == ["final_score", "in_last_line"]


@pytest.mark.parametrize("stage", ["draft", "essay", "evaluation", "comparison"])
@pytest.mark.parametrize("name", [None, "", "  "])
def test_empty_name_gives_the_stage_default(stage: str, name: str | None) -> None:
    resolved, parser = get_parser(stage, name)
    assert resolved == DEFAULT_PARSERS[stage]
    assert resolved in parser_names(stage)
    assert callable(parser)


def test_defaults() -> None:
    assert DEFAULT_PARSERS == {
        "draft": "identity",
        "essay": "identity",
        "evaluation": "final_score",
        "comparison": "pairwise_verdict",
    }


def test_name_is_stripped() -> None:
    assert get_parser("evaluation", " in_last_line ")[0] == "in_last_line"


def test_unknown_parser_lists_the_known_names_for_that_stage() -> None:
    with pytest.raises(ConfigError) as info:
        get_parser("evaluation", "essay_idea_last")
    message = str(info.value)
    assert "unknown evaluation parser 'essay_idea_last'" in message
    assert "final_score, in_last_line" in message
    assert "evaluation_templates.csv" in message and "the default, final_score" in message


def test_unknown_stage_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="known stages: draft, essay, evaluation"):
        get_parser("critique", None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        parser_names("critique")  # type: ignore[arg-type]


def test_parse_error_is_a_daydream_and_value_error() -> None:
    assert issubclass(ParseError, DaydreamError)
    assert issubclass(ParseError, ValueError)


def test_register_parser_adds_one_decorated_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # Work on a copy of the registry so the added parser does not leak into other tests.
    monkeypatch.setattr(
        _registry, "_REGISTRY", {s: dict(p) for s, p in _registry._REGISTRY.items()}
    )

    @register_parser(("draft", "essay"), "upper")
    def upper(text: str) -> ParseResult:
        return ParseResult(text=text.upper())

    assert get_parser("essay", "upper")[1]("abc").text == "ABC"
    assert "upper" in parser_names("draft")
    assert "upper" not in parser_names("evaluation")
    with pytest.raises(ValueError, match="already registered"):
        register_parser("draft", "upper")(upper)
    with pytest.raises(ConfigError):
        register_parser("nope", "x")  # type: ignore[arg-type]


def test_parse_result_is_frozen() -> None:
    result = ParseResult(text="7", score=7.0, scale="0-10")
    with pytest.raises(AttributeError):
        result.score = 8.0  # type: ignore[misc]
    assert result.details == {}
