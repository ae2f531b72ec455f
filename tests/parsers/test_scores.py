"""Evaluation parsers against realistic responses (fixtures/evaluation/*.txt) and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daydreaming_dagster.parsers import ParseError, get_parser

FIXTURES = Path(__file__).parent / "fixtures" / "evaluation"
EXPECTED: dict[str, dict[str, dict]] = json.loads((FIXTURES / "expected.json").read_text())
CASES = [
    pytest.param(name, parser, expectation, id=f"{parser}:{name}")
    for name, by_parser in EXPECTED.items()
    for parser, expectation in by_parser.items()
]


def test_every_fixture_has_an_expectation() -> None:
    files = {p.name for p in FIXTURES.glob("*.txt")}
    assert files == set(EXPECTED), files ^ set(EXPECTED)
    assert len(files) >= 35


@pytest.mark.parametrize(("name", "parser_name", "expectation"), CASES)
def test_fixture(name: str, parser_name: str, expectation: dict) -> None:
    _, parser = get_parser("evaluation", parser_name)
    text = (FIXTURES / name).read_text()
    if "error" in expectation:
        with pytest.raises(ParseError) as info:
            parser(text)
        assert expectation["error"] in str(info.value)
        return
    result = parser(text)
    assert result.score == pytest.approx(expectation["score"])
    assert result.scale == expectation["scale"]
    assert result.text == f"{expectation['score']:g}"
    for key in ("rule", "label", "rounded_from", "scale_source", "note"):
        if key in expectation:
            assert result.details[key] == expectation[key], (key, result.details)


def _score(text: str, parser_name: str = "final_score") -> tuple[float | None, str | None]:
    result = get_parser("evaluation", parser_name)[1](text)
    return result.score, result.scale


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("SCORE: 7", 7),
        ("**SCORE:** 7", 7),
        ("Score: 7.5", 7.5),
        ("Total Score: 7/10", 7),
        ("### Final Score:\n\n**8/10**", 8),
        ("**Final Score: 8/10**", 8),
        ("Final Score: 6.5/10 → rounded to 7/10", 7),
        ("Final Score: 6.5/10 -> 7/10", 7),
        ("SCORE: 7 (out of 10)", 7),
        ("Score: 7 out of 10", 7),
        ("score = 4", 4),
        ("## Final Score 8/10", 8),
        ("> **Final verdict:** 9/10", 9),
        ("Overall: 5/10", 5),
        ("My final score is: 3", 3),
        ("Score (0-10): 6", 6),
        ("Final Score = (3 + 2 + 2) = 7", 7),
        ("Final score: 13/20 → 6.5/10", 6.5),
        ("SCORE: 0", 0),
        ("SCORE: 10/10", 10),
        ('{"score": 9, "comment": "great"}', 9),
        ("I give it a 4/10.", 4),
        ("Final score：7", 7),
        ("- Final Score: 2 × 3 = 6", 6),
        ("- Final Score: 2 * 3 = 6", 6),
        ("Final Score: 7/10 (originality 3/5 + clarity 2/3)", 7),
        ("Score: 7 (rounded from 6.6)", 7),
        ("<final_score> 8 </final_score>", 8),
        ("Score: 7 because the mechanism is complete", 7),
        ("Final Score: 6.5\n\nSCORE: 7", 7),
        ("Total: 6.5/10\n## Verdict\nSCORE: 7", 7),
    ],
)
def test_declaration_forms(text: str, score: float) -> None:
    assert _score(text)[0] == pytest.approx(score)


@pytest.mark.parametrize(
    "text",
    [
        "Core Concepts: 3/5\n- Originality: 2/3\n2 + 3 + 2 = 7\nFinal Score: 6/10",
        "Final Score: 6/10\n\nCore Concepts: 3/5\n- Originality: 2/3\n2 + 3 + 2 = 7",
        "Total: 2 + 2 + 2 = 6\nThe essay meets 8 of 10 criteria partly.",
        "| Criterion | Score |\n|---|---|\n| Originality | 2/3 |\n| **Total** | **6/10** |\n",
        "Score: 6\n\nIf the author fixed the ending I would rate it 8/10.",
        "SCORE: 6\nTotal words: 800\nEvaluation 2: clarity",
        "SCORE: 6\nTotal: 3 criteria met",
        "Final Score: 6\n### Originality\nScore: 2\n### Clarity\nScore: 3",
        "**Overall rating: 6/10**\n\n- Novelty\n  - Score: 2",
    ],
)
def test_sub_scores_and_arithmetic_never_win_over_a_final_declaration(text: str) -> None:
    assert _score(text)[0] == 6


def test_the_last_labelled_declaration_wins() -> None:
    text = "Score: 5/10\n\nAfter reconsidering the second half:\n\nFinal Score: 8/10\n\nThanks."
    assert _score(text)[0] == 8


def test_labelled_declaration_beats_a_later_rating_sentence() -> None:
    text = "SCORE: 6\n\nIn a different genre I would rate it 9/10, but not here."
    assert _score(text)[0] == 6


@pytest.mark.parametrize(
    ("text", "scale"),
    [
        ("Final rating: 5/9", "0-9"),
        ("Graded on the 0-9 scale.\nSCORE: 4", "0-9"),
        ("Using a 9-point scale.\nSCORE: 4", "0-9"),
        ("Score (out of 9): 4", "0-9"),
        ("SCORE: 4", "0-10"),
        ("Graded on the 0-9 scale.\nSCORE: 4/10", "0-10"),
        ("Scale 1 to 10.\nSCORE: 4", "0-10"),
    ],
)
def test_scale_detection(text: str, scale: str) -> None:
    assert _score(text)[1] == scale


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no final score found"),
        ("The essay is fine.", "no final score found"),
        ("SCORE: 12/10", "outside the 0-10 scale"),
        ("Final Score: 11", "outside the 0-10 scale"),
        ("Score: 3/5", "out of 5"),
        ("SCORE: X", "no final score found"),
        ("Score: 0-10", "no final score found"),
        ("2 + 3 + 2 = 7", "no final score found"),
        ("<think>SCORE: 7</think>", "no final score found"),
        ("It could earn a 9/10 with more work.", "no final score found"),
        ("Total: 800 words", "no final score found"),
        ("Score: 7 for originality", "no final score found"),
    ],
)
def test_no_usable_score_is_a_parse_error(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        _score(text)


def test_in_last_line_only_looks_at_the_last_three_lines() -> None:
    text = "SCORE: 7\nnote one\nnote two\nnote three"
    assert _score(text)[0] == 7
    with pytest.raises(ParseError, match="declared on line 1 .* not within the last 3"):
        _score(text, "in_last_line")
    assert _score("SCORE: 7\n\nnote one\n\nnote two\n\n", "in_last_line")[0] == 7


def test_details_name_the_matched_line_in_the_raw_text() -> None:
    text = "<think>\nlong\nthought\n</think>\nCritique.\n\n**Final Score:** 8/10\nThanks."
    result = get_parser("evaluation", "final_score")[1](text)
    assert result.details["line"] == 7
    assert result.details["matched"] == "**Final Score:** 8/10"
    assert result.details["denominator"] == 10
    assert result.details["thinking_sections_removed"] == 1


def test_criterion_scores_after_the_final_are_reported_as_skipped() -> None:
    text = "Final Score: 6\n### Originality\nScore: 2"
    result = get_parser("evaluation", "final_score")[1](text)
    assert result.score == 6
    assert result.details["skipped"] == ["line 3 (a criterion score after the final declaration)"]


def test_skipped_sub_scores_are_reported_in_details() -> None:
    result = get_parser("evaluation", "final_score")[1](
        "Originality score: 2\nScore: 2/3\nSCORE: 7"
    )
    assert result.score == 7
    assert any("out of 3" in entry for entry in result.details["skipped"])


def _big_response(target_bytes: int) -> str:
    paragraph = (
        "The essay weighs several criteria. Core Concepts: 3/5. Originality: 2/3. "
        "2 + 3 + 2 = 7. Some models write Score: 2/3 for a criterion, or <essay-idea> tags, "
        "or a stray <think> tag, or 0-9 scales, or long lines of ***bold*** noise ||| 1. 2. 3.\n"
    )
    body = paragraph * (target_bytes // len(paragraph) + 1)
    return body + "\n**Final Score: 6.5/10 → rounded to 7/10**\n\nClosing notes follow.\n"


def test_one_megabyte_response_parses_to_the_final_score() -> None:
    text = _big_response(1_000_000)
    assert len(text.encode()) > 1_000_000
    result = get_parser("evaluation", "final_score")[1](text)
    assert result.score == 7
    assert result.details["rounded_from"] == 6.5


@pytest.mark.parametrize(
    "filler",
    [
        "<think>" * 50_000,
        "final " * 100_000,
        "Score: (" * 100_000,
        "1" * 1_000_000,
        " " * 1_000_000,
        "rated " + "a " * 300_000,
        "\\boxed{" * 100_000,
    ],
    ids=["think-openers", "final-words", "open-parens", "digits", "spaces", "prose", "boxed"],
)
def test_adversarial_megabyte_lines_still_parse(filler: str) -> None:
    text = filler + "\nSCORE: 7\n"
    # With the unclosed-<think> filler the score is inside thinking; the fallback accepts it.
    assert _score(text)[0] == 7


@pytest.mark.parametrize(
    "filler",
    ["final score: x " * 70_000, "Score: 1 + " * 90_000, "rounded to 6 → " * 60_000],
    ids=["inline-labels", "open-expression", "conversions"],
)
def test_many_declarations_on_one_huge_line_stay_linear(filler: str) -> None:
    assert _score(filler + "\nSCORE: 7\n")[0] == 7


def test_dates_are_not_scale_mentions() -> None:
    assert _score("Reviewed on 3/9/2024.\nSCORE: 8")[1] == "0-10"


def test_many_criterion_sections_after_the_final_stay_fast_and_skipped() -> None:
    text = "Final Score: 6/10\n" + "### Criterion\nScore: 2\n" * 60_000
    result = get_parser("evaluation", "final_score")[1](text)
    assert result.score == 6
    assert len(text) > 1_000_000
