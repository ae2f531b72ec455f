"""The offline provider: deterministic, honest, stage-shaped synthetic text."""

from __future__ import annotations

import asyncio
import re
import time

from daydreaming_dagster.llm import SYNTHETIC_MARKER, OfflineProvider, synthetic_completion
from daydreaming_dagster.llm.offline import count_tokens, truncate_to_tokens

from .conftest import make_request

DRAFT_PROMPT = (
    "Concepts: Mycorrhizal networks (fungi trading nutrients between trees) and "
    "Double-entry bookkeeping (every transfer recorded twice).\n"
    'Write notes on links between them. Put your best idea in <essay-idea stage="N"> tags.'
)
SCORE_LINE = re.compile(r"^SCORE: (\d+(?:\.5)?)$")


def test_same_inputs_give_the_same_text_and_replicates_differ() -> None:
    first = synthetic_completion(DRAFT_PROMPT, "draft", "m/a", 1)
    assert synthetic_completion(DRAFT_PROMPT, "draft", "m/a", 1) == first
    assert synthetic_completion(DRAFT_PROMPT, "draft", "m/a", 2) != first
    assert synthetic_completion(DRAFT_PROMPT, "draft", "m/b", 1) != first
    assert synthetic_completion(DRAFT_PROMPT + " ", "draft", "m/a", 1) != first


def test_every_text_says_it_is_synthetic() -> None:
    for stage in ("draft", "essay", "evaluation"):
        text = synthetic_completion(DRAFT_PROMPT, stage, "m", 1)
        assert text.splitlines()[0] == SYNTHETIC_MARKER
        assert "not a language model" in text


def test_draft_has_notes_reusing_prompt_words_and_essay_idea_blocks_when_asked() -> None:
    for replicate in range(1, 30):
        text = synthetic_completion(DRAFT_PROMPT, "draft", "m", replicate)
        assert len([line for line in text.splitlines() if line.strip()]) >= 6
        assert {"mycorrhizal", "bookkeeping", "nutrients"} & set(re.findall(r"[a-z-]+", text))
        blocks = re.findall(r'<essay-idea stage="(\d)">\n(.+?)\n</essay-idea>', text, re.S)
        assert 1 <= len(blocks) <= 3
        assert [int(n) for n, _ in blocks] == list(range(1, len(blocks) + 1))
        assert all(body.strip() for _, body in blocks)


def test_draft_without_tag_request_has_no_blocks() -> None:
    text = synthetic_completion("List links between tides and clocks.", "draft", "m", 1)
    assert "<essay-idea" not in text
    assert len([line for line in text.splitlines() if line.strip()]) >= 6


def test_essay_has_several_paragraphs() -> None:
    text = synthetic_completion(
        "Expand this draft into an essay: tides and clocks.", "essay", "m", 3
    )
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 4  # marker, title, >= 3 body paragraphs
    assert paragraphs[1].startswith("# ")


def test_evaluation_ends_with_a_parseable_score_consistent_with_sub_scores() -> None:
    scores = set()
    for replicate in range(1, 60):
        text = synthetic_completion(
            "Rate this essay. End with SCORE: N", "evaluation", "m", replicate
        )
        last = text.strip().splitlines()[-1]
        match = SCORE_LINE.match(last)
        assert match, last
        score = float(match.group(1))
        assert 0 <= score <= 10
        subs = re.findall(r"^(Originality|Coherence|Depth): (\d)/(\d)$", text, re.M)
        assert [s[0] for s in subs] == ["Originality", "Coherence", "Depth"]
        total = sum(int(s[1]) for s in subs)
        assert abs(score - total) <= 0.5
        scores.add(score)
    assert len(scores) >= 5  # scores vary across replicates
    assert any(s != int(s) for s in scores)  # halves occur


def test_truncate_to_tokens_keeps_layout() -> None:
    assert truncate_to_tokens("a b\nc  d e", 3) == "a b\nc"
    assert truncate_to_tokens("a b", 5) == "a b"
    assert count_tokens("a b\nc  d e") == 5


def test_provider_result_usage_cost_and_max_tokens() -> None:
    provider = OfflineProvider()
    request = make_request(DRAFT_PROMPT, stage="draft", replicate=2)
    result = asyncio.run(provider.generate(request))
    assert result.text == synthetic_completion(DRAFT_PROMPT, "draft", "mock/model", 2)
    assert result.provider == "offline"
    assert result.finish_reason == "stop" and not result.truncated
    assert result.usage.prompt_tokens == len(DRAFT_PROMPT.split())
    assert result.usage.completion_tokens == len(result.text.split())
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.usage.cost_usd == 0.0
    short = asyncio.run(provider.generate(make_request(DRAFT_PROMPT, max_tokens=10)))
    assert short.finish_reason == "length" and short.truncated
    assert short.usage.completion_tokens == 10


def test_offline_is_fast() -> None:
    provider = OfflineProvider()
    requests = [make_request(DRAFT_PROMPT * 5, replicate=i) for i in range(500)]

    async def run_all() -> None:
        for request in requests:
            await provider.generate(request)

    started = time.perf_counter()
    asyncio.run(run_all())
    per_call = (time.perf_counter() - started) / len(requests)
    assert per_call < 0.002, f"{per_call * 1e6:.0f} us per call"


def test_evaluation_scores_follow_the_essay_not_only_the_template() -> None:
    """Two evaluation templates and two models agree on which essays are better (each essay has
    a planted quality), and a model's planted offset shifts all its scores."""
    import re

    import numpy as np

    from daydreaming_dagster.llm.offline import (
        essay_quality,
        evaluator_offset,
        quoted_essay,
        synthetic_completion,
    )

    def score(essay: str, template: str, model: str) -> float:
        prompt = template.replace("{{ response }}", essay)
        text = synthetic_completion(prompt, "evaluation", model)
        return float(re.search(r"SCORE: ([0-9.]+)", text).group(1))

    rubric = "Evaluate the following essay.\n\n---\n{{ response }}\n---\n\nRate it. End with SCORE: <0-10>"
    overall = "You are reviewing a short essay.\n\n---\n{{ response }}\n---\n\nJudge it. SCORE: <0-10>"
    essays = [f"# On topic {i}\n\nAn essay about idea number {i} and its consequences." for i in range(60)]
    assert quoted_essay(rubric.replace("{{ response }}", essays[3])).strip() == essays[3]
    a = np.array([score(e, rubric, "judge-a") for e in essays])
    b = np.array([score(e, overall, "judge-b") for e in essays])
    quality = np.array([essay_quality(e) for e in essays])
    assert np.corrcoef(a, b)[0, 1] > 0.6
    assert np.corrcoef(a, quality)[0, 1] > 0.8
    shift = 10 * (evaluator_offset("judge-a") - evaluator_offset("judge-b"))
    assert abs((a - b).mean() - shift) < 0.5
    # Same essay, same template, same model: the same text (deterministic).
    assert score(essays[0], rubric, "judge-a") == score(essays[0], rubric, "judge-a")
