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
