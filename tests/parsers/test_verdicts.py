"""The comparison parser ``pairwise_verdict`` on varied verdict lines, revisions and failures."""

from __future__ import annotations

import pytest

from daydreaming_dagster.parsers import DEFAULT_PARSERS, ParseError, get_parser, parser_names

_, PARSE = get_parser("comparison", "pairwise_verdict")

REASONS = "Essay A is vivid but thin.\nEssay B argues more carefully and gives an example.\n"

# (response, expected verdict)
VERDICTS = [
    ("WINNER: A", "A"),
    ("WINNER: B", "B"),
    ("WINNER: tie", "tie"),
    ("Winner: B", "B"),
    ("winner: a", "A"),
    ("winner: b.", "B"),
    ("**Winner:** Essay A", "A"),
    ("**Winner: Essay B**", "B"),
    ("Verdict: tie", "tie"),
    ("Final verdict: essay b", "B"),
    ("## Final Verdict: Essay A", "A"),
    ("### Winner: **B**", "B"),
    ("> WINNER: A.", "A"),
    ("- Winner: B!", "B"),
    ("`WINNER: A`", "A"),
    ('WINNER: "B"', "B"),
    ("Winner: [A]", "A"),
    ("Winner: (B)", "B"),
    ("Winner - B", "B"),
    ("Winner = A", "A"),
    ("Winner — Essay B", "B"),
    ("The winner is Essay A.", "A"),
    ("The better essay is B", "B"),
    ("Overall winner: Response A", "A"),
    ("Preferred essay: Option B", "B"),
    ("Decision: Candidate A", "A"),
    ("Winner (A or B): B", "B"),
    ("Winner: A — it is more original and better argued.", "A"),
    ("Winner: B, because its example is concrete.", "B"),
    ("Winner: Essay A (by a narrow margin)", "A"),
    ("Verdict: a tie", "tie"),
    ("Verdict: It's a tie.", "tie"),
    ("Verdict: It’s a tie.", "tie"),
    ("Winner: Draw", "tie"),
    ("WINNER: TIE", "tie"),
    ("Verdict: equal", "tie"),
    ("Verdict: equally good", "tie"),
    ("Preference: no preference", "tie"),
    ("Winner: tie between A and B", "tie"),
    ("Winner Essay B", "B"),
    ("**Winner:**\n\nEssay A", "A"),
    ("### Final verdict:\n**B**", "B"),
    ("Result: A", "A"),
]


@pytest.mark.parametrize(("line", "expected"), VERDICTS, ids=[v[0] for v in VERDICTS])
def test_verdict_line(line: str, expected: str) -> None:
    result = PARSE(REASONS + "\n" + line + "\n")
    assert result.text == expected
    assert result.details["verdict"] == expected
    assert result.details["rule"] in ("labelled_line", "label_then_next_line")
    assert result.details["line"]
    assert result.score is None


@pytest.mark.parametrize(
    ("response", "expected", "revised"),
    [
        ("Winner: A\nOn reflection B is stronger.\nFinal verdict: B", "B", True),
        ("WINNER: B\nMore notes.\nWINNER: B", "B", False),
        ("Verdict: tie\nWait, A's argument holds up better.\nWINNER: A", "A", True),
        # an ambiguous format echo early does not block the real verdict at the end
        ("Answer with WINNER: A, B or tie.\nWINNER: <A|B|tie>\nReasons...\nWINNER: B", "B", False),
        # an unreadable verdict-labelled line is skipped, the earlier verdict stands
        ("WINNER: A\nVerdict: both essays have merit, honestly.", "A", False),
    ],
)
def test_last_verdict_wins(response: str, expected: str, revised: bool) -> None:
    result = PARSE(response)
    assert result.text == expected
    assert result.details["revised"] is revised


def test_details_name_the_line() -> None:
    result = PARSE("Essay A rambles.\n\n**Final Verdict:** Essay B.\n\nThanks!")
    assert result.details == {
        "verdict": "B",
        "line": "**Final Verdict:** Essay B.",
        "line_number": 3,
        "rule": "labelled_line",
        "label": "final verdict",
        "verdict_lines": 1,
        "revised": False,
    }


def test_next_line_rule_keeps_both_lines() -> None:
    result = PARSE("Reasons.\n**Winner:**\n\nEssay A\n")
    assert result.details["rule"] == "label_then_next_line"
    assert result.details["line"] == "**Winner:** Essay A"
    assert result.details["line_number"] == 4


def test_thinking_is_ignored() -> None:
    result = PARSE("<think>Maybe WINNER: A</think>\nAfter reading both:\nWINNER: B")
    assert result.text == "B"
    assert result.details["thinking_sections_removed"] == 1
    with pytest.raises(ParseError, match="only inside thinking"):
        PARSE("<think>WINNER: A</think>\nBoth are fine.")


@pytest.mark.parametrize(
    "response",
    [
        "",
        "Essay A is better than essay B.",  # prose, no verdict line
        "I prefer A.",
        "Novelty winner: A\nCoherence winner: B",  # criterion winners are not the verdict
        "Winner on novelty: A",
        "Winner: the first one",
        "Verdict: both have merit",
        "Winner: a close call",  # the article, not essay A
        "Winner: C",
        "Winner Essay B is clearly better overall",  # no separator and more text: not a verdict
        "Scores: A 7/10, B 8/10",
        "**Winner:**",  # label with nothing after it
    ],
)
def test_no_verdict_is_a_parse_error(response: str) -> None:
    with pytest.raises(ParseError, match="no verdict found: looked for a verdict line"):
        PARSE(response)


@pytest.mark.parametrize(
    "response",
    [
        "Winner: A or B",
        "WINNER: A/B",
        "Winner: Essay A and Essay B",
        "Winner: A, B",
        "WINNER: <A|B|tie>",
        "Winner: A vs B",
        "Verdict: tie or B",
        "WINNER: A\nActually I can't decide.\nWinner: A or B",  # the last line decides
    ],
)
def test_ambiguous_last_line_is_a_parse_error(response: str) -> None:
    with pytest.raises(ParseError, match="ambiguous final verdict"):
        PARSE(response)


def test_registered_as_comparison_default() -> None:
    assert DEFAULT_PARSERS["comparison"] == "pairwise_verdict"
    assert get_parser("comparison", None)[0] == "pairwise_verdict"
    assert parser_names("comparison") == ["pairwise_verdict"]


def test_long_responses_stay_linear() -> None:
    # Many label-like lines and a huge line: parsing must not blow up.
    text = ("Winner: " + "A or " * 20_000 + "\n") + "Verdict: x\n" * 20_000 + "WINNER: B\n"
    assert PARSE(text).text == "B"
