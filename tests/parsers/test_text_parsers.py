"""Draft and essay parsers: tagged blocks, stage ranking, thinking removal, identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from daydreaming_dagster.parsers import (
    ParseError,
    find_thinking,
    get_parser,
    strip_thinking_text,
    tagged_blocks,
)

FIXTURES = Path(__file__).parent / "fixtures" / "draft"


def _parse(stage: str, name: str, text: str):
    return get_parser(stage, name)[1](text)


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_highest_stage_wins_and_thinking_blocks_are_ignored() -> None:
    result = _parse("draft", "essay_idea_last", _fixture("staged_ideas_with_thinking.txt"))
    assert result.text.startswith('A background "daydreaming" loop: sample pairs')
    assert result.text.endswith("so they compound.")
    assert result.details["block_stage"] == "2"
    assert result.details["blocks_found"] == 3
    assert result.details["thinking_sections_removed"] == 1


def test_without_stages_the_last_complete_block_wins() -> None:
    result = _parse("draft", "essay_idea_last", _fixture("unstaged_ideas.txt"))
    assert result.text == "Second idea: a generator–critic pair running while the system idles."
    assert result.details["unclosed_blocks_ignored"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<essay-idea stage="2">b</essay-idea><essay-idea stage="2">c</essay-idea>', "c"),
        ('<essay-idea stage="3">a</essay-idea><essay-idea stage="2">b</essay-idea>', "a"),
        ("<essay-idea stage='10'>ten</essay-idea><essay-idea stage='9'>nine</essay-idea>", "ten"),
        ('<essay-idea stage="1">a</essay-idea><essay-idea>plain</essay-idea>', "a"),
        ('<essay-idea stage="x">a</essay-idea><essay-idea>b</essay-idea>', "b"),
        ('<essay-idea stage="2">a</essay-idea><essay-idea stage="5"> </essay-idea>', "a"),
        ("<essay-idea>\n  spaced  \n</essay-idea >", "spaced"),
    ],
)
def test_block_ranking(text: str, expected: str) -> None:
    assert _parse("draft", "essay_idea_last", text).text == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no tags at all", "no such block"),
        ("<essay-idea>cut off", "never closed"),
        ("<essay-idea>  </essay-idea>", "all empty"),
        ("<think><essay-idea>hidden</essay-idea></think>", "only inside thinking"),
        ("", "no such block"),
    ],
)
def test_strict_block_parser_fails_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        _parse("draft", "essay_idea_last", text)


def test_lenient_falls_back_to_text_without_thinking() -> None:
    result = _parse("draft", "essay_idea_last_lenient", _fixture("no_tags_with_thinking.txt"))
    assert result.text.startswith("Links:\n1. Feedback loops")
    assert "Let me consider" not in result.text
    assert result.details["fallback"] is True
    assert "no complete <essay-idea>" in result.details["fallback_reason"]


def test_lenient_uses_the_block_when_there_is_one() -> None:
    result = _parse("draft", "essay_idea_last_lenient", _fixture("staged_ideas_with_thinking.txt"))
    assert result.details["block_stage"] == "2"
    assert "fallback" not in result.details


def test_lenient_with_only_thinking_is_an_error() -> None:
    with pytest.raises(ParseError, match="empty"):
        _parse("draft", "essay_idea_last_lenient", "<think>only thoughts</think>\n")


@pytest.mark.parametrize("stage", ["draft", "essay"])
def test_identity_strips_and_rejects_empty(stage: str) -> None:
    assert _parse(stage, "identity", "\n  Essay text.\n\nSecond para.  \n").text == (
        "Essay text.\n\nSecond para."
    )
    with pytest.raises(ParseError, match="empty"):
        _parse(stage, "identity", " \n\t")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think>Answer", "Answer"),
        ("<THINKING>\na\n</THINKING>\n\nAnswer\n", "Answer"),
        ("Before <think>x</think> middle <think>y</think> after", "Before  middle  after"),
        ("<think>outer <think>inner</think> still outer</think>Answer", "Answer"),
        ("reasoning without opener\n</think>\nAnswer", "Answer"),
        ("Answer first.\n<think>truncated reasoning that never closes", "Answer first."),
        ("No thinking here.", "No thinking here."),
    ],
)
def test_strip_thinking(text: str, expected: str) -> None:
    assert _parse("essay", "strip_thinking", text).text == expected
    assert strip_thinking_text(text) == expected


def test_strip_thinking_reports_unusual_shapes() -> None:
    details = _parse("draft", "strip_thinking", "r\n</think>\nA <think>x").details
    assert details["thinking_opener_missing"] is True
    assert details["unclosed_thinking"] is True
    with pytest.raises(ParseError, match="without thinking sections is empty"):
        _parse("draft", "strip_thinking", "<think>all of it</think>")


def test_essay_block_parsers() -> None:
    text = "Plan...\n<essay>\nTitle\n\nBody.\n</essay>\nThanks!"
    assert _parse("essay", "essay_block", text).text == "Title\n\nBody."
    with pytest.raises(ParseError):
        _parse("essay", "essay_block", "Just an essay.")
    assert _parse("essay", "essay_block_lenient", "Just an essay.").text == "Just an essay."


def test_helpers_expose_spans_and_attributes() -> None:
    spans = find_thinking("a<think>b</think>c")
    assert spans.spans == ((1, 17),) and not spans.unclosed
    blocks, unclosed = tagged_blocks('<x k="v" n=3>one</x><x>two</x><x>', "x")
    assert [b.content for b in blocks] == ["one", "two"]
    assert blocks[0].attrs == {"k": "v", "n": "3"}
    assert unclosed == 1


def test_one_megabyte_draft_with_many_unclosed_tags_is_linear() -> None:
    text = "<essay-idea stage='1'> partial " * 30_000 + "<think>" * 20_000
    text = '<essay-idea stage="7">the real one</essay-idea>\n' + text
    assert len(text) > 1_000_000
    # The trailing unclosed <think> hides the unclosed blocks, but the first block stands.
    assert _parse("draft", "essay_idea_last", text).text == "the real one"


# -- the established DayDreaming tool's draft parsers ------------------------------------------
def _draft(name: str):  # noqa: ANN202
    from daydreaming_dagster.parsers import get_parser

    return get_parser("draft", name)[1]


def test_draft_essay_block_takes_the_first_block_and_runs_to_the_end_when_unclosed() -> None:
    essay_block = _draft("essay_block")
    assert essay_block("intro <essay>first</essay> <essay>second</essay>").text == "first"
    cut = essay_block("notes\n<essay>\nA long essay cut short")
    assert cut.text == "A long essay cut short" and cut.details["unclosed_block_to_end"]
    with pytest.raises(ParseError, match="no <essay> tag"):
        essay_block("no tags at all")
    with pytest.raises(ParseError, match="empty"):
        essay_block("<essay>  </essay>")


def test_draft_essay_block_lenient_drops_thinking_then_falls_back_to_the_whole_text() -> None:
    lenient = _draft("essay_block_lenient")
    result = lenient("<thinking><essay>draft idea</essay></thinking>\n<essay>the real one</essay>")
    assert result.text == "the real one" and result.details["thinking_sections_removed"] == 1
    fallback = lenient("<thinking>hmm</thinking>\nJust prose, no tags.")
    assert fallback.text == "Just prose, no tags." and fallback.details["fallback"]
    with pytest.raises(ParseError):
        lenient("<thinking>only thinking</thinking>")
