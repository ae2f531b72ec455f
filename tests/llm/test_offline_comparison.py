"""Offline and mock-server answers to comparison prompts: a parseable verdict that follows the
essays' planted qualities (the same ones the evaluation scores use), with a planted bias for A."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import httpx
from scipy.stats import kendalltau

from daydreaming_dagster.llm import SYNTHETIC_MARKER, synthetic_completion
from daydreaming_dagster.llm.mock_server import MockLLMServer, infer_stage
from daydreaming_dagster.llm.offline import (
    COMPARISON_POSITION_BIAS,
    essay_quality,
    quoted_pair,
)
from daydreaming_dagster.parsers import get_parser
from daydreaming_dagster.stages.prompt import render_template

TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "1_raw" / "templates" / "comparison"
_, VERDICT = get_parser("comparison", "pairwise_verdict")
ESSAYS = [f"# On topic {i}\n\nAn essay about idea number {i} and its consequences.\n" for i in range(24)]
CONCEPTS = [{"concept_id": "tides", "name": "Tides", "content": "Water moved by the moon."}]


def prompt(a: str, b: str, template: str = "compare-overall") -> str:
    text = (TEMPLATES / f"{template}.txt").read_text()
    return render_template(
        text, {"essay_a": a, "essay_b": b, "concepts_a": CONCEPTS, "concepts_b": CONCEPTS},
        template_name=template,
    )


def verdict(a: str, b: str, model: str = "judge", replicate: int = 1, template: str = "compare-overall") -> str:
    return VERDICT(synthetic_completion(prompt(a, b, template), "comparison", model, replicate)).text


def test_templates_quote_both_essays_and_the_answer_parses() -> None:
    for template in ("compare-overall", "compare-novelty"):
        rendered = prompt(ESSAYS[0], ESSAYS[1], template)
        assert f'<essay id="A">\n{ESSAYS[0]}\n</essay>' in rendered
        assert f'<essay id="B">\n{ESSAYS[1]}\n</essay>' in rendered
        assert rendered.rstrip().endswith("WINNER: tie")
        assert quoted_pair(rendered) == (f"\n{ESSAYS[0]}\n", f"\n{ESSAYS[1]}\n")
        text = synthetic_completion(rendered, "comparison", "m", 1)
        assert text.splitlines()[0] == SYNTHETIC_MARKER
        assert re.fullmatch(r"WINNER: (A|B|tie)", text.strip().splitlines()[-1])
        assert len(text.strip().splitlines()) >= 4  # marker, reasons, verdict
    novelty = prompt(ESSAYS[0], ESSAYS[1], "compare-novelty")
    assert "Tides: Water moved by the moon." in novelty
    # concepts are optional for the novelty template
    bare = render_template((TEMPLATES / "compare-novelty.txt").read_text(),
                           {"essay_a": "x", "essay_b": "y"}, template_name="compare-novelty")
    assert "written from these concepts" not in bare


def test_verdicts_are_deterministic_and_seeded_by_model_and_replicate() -> None:
    a, b = ESSAYS[0], ESSAYS[1]
    text = synthetic_completion(prompt(a, b), "comparison", "m", 1)
    assert synthetic_completion(prompt(a, b), "comparison", "m", 1) == text
    assert synthetic_completion(prompt(a, b), "comparison", "m", 2) != text
    assert synthetic_completion(prompt(a, b), "comparison", "other", 1) != text


def test_verdicts_follow_planted_quality_and_favour_position_a() -> None:
    quality = {e: essay_quality(e) for e in ESSAYS}
    agree = clear = 0
    a_wins = b_wins = ties = 0
    for a, b in itertools.permutations(ESSAYS[:16], 2):
        v = verdict(a, b)
        a_wins += v == "A"
        b_wins += v == "B"
        ties += v == "tie"
        if abs(quality[a] - quality[b]) > 0.4:
            clear += 1
            agree += v == ("A" if quality[a] > quality[b] else "B")
    assert clear >= 20 and agree == clear  # a large quality gap always decides
    # every pair is judged in both orders, so quality cancels and only the bias remains
    assert a_wins > b_wins + 0.05 * (a_wins + b_wins)
    assert ties > 0


def test_close_qualities_give_ties_and_both_outcomes() -> None:
    same = ESSAYS[3]
    other = same + " "  # the same planted quality (whitespace ignored), a different prompt
    outcomes = {verdict(same, other, replicate=r) for r in range(1, 60)}
    assert outcomes == {"A", "B", "tie"}


def test_tournament_and_scores_agree_on_the_truth() -> None:
    """Round-robin win counts and evaluation scores rank the essays alike (same planted quality)."""
    essays = ESSAYS[:12]
    wins = dict.fromkeys(essays, 0.0)
    for a, b in itertools.permutations(essays, 2):
        v = verdict(a, b)
        wins[a] += 1.0 if v == "A" else 0.5 if v == "tie" else 0.0
        wins[b] += 1.0 if v == "B" else 0.5 if v == "tie" else 0.0
    _, score = get_parser("evaluation", "final_score")
    scores = {
        e: sum(
            score(synthetic_completion(f"Review.\n\n---\n{e}\n---\n\nSCORE: <0-10>", "evaluation", "m", r)).score
            for r in range(1, 6)
        )
        for e in essays
    }
    assert kendalltau([wins[e] for e in essays], [essay_quality(e) for e in essays]).statistic > 0.8
    assert kendalltau([wins[e] for e in essays], [scores[e] for e in essays]).statistic > 0.6


def test_planted_bias_is_positive() -> None:
    assert 0 < COMPARISON_POSITION_BIAS < 0.2


def test_mock_server_recognises_and_answers_a_comparison_prompt(mock_server: MockLLMServer) -> None:
    rendered = prompt(ESSAYS[4], ESSAYS[5], "compare-novelty")
    assert infer_stage(rendered, None) == "comparison"  # despite "essay" and no header
    assert infer_stage(rendered + "\nSCORE", None) == "comparison"
    assert infer_stage("anything", "comparison") == "comparison"
    assert infer_stage('Only <essay id="A">x</essay> here. Score it.', None) == "evaluation"
    with httpx.Client(base_url=mock_server.url, timeout=5) as http:
        body = http.post(
            "/v1/chat/completions",
            json={"model": "judge", "messages": [{"role": "user", "content": rendered}]},
        ).json()
    text = body["choices"][0]["message"]["content"]
    assert text == synthetic_completion(rendered, "comparison", "judge", 1)
    assert VERDICT(text).text in ("A", "B", "tie")
