"""The offline provider: deterministic *synthetic* text, no network, no language model.

It exists so the whole pipeline runs out of the box, in demos and in tests. Its output is
seeded by (prompt, stage, model, replicate) and shaped like what each stage expects:

- ``draft``: at least six lines of notes reusing words of the prompt and, when the prompt
  asks for ``<essay-idea>`` tags, one to three ``<essay-idea stage="N">`` blocks;
- ``essay``: a title and several paragraphs;
- ``evaluation``: brief reasoning, sub-scores such as ``Originality: 2/3`` and a final
  ``SCORE: N`` line (N in 0-10, possibly ``.5``). Scores depend on the essay, not only on the
  template: each essay the prompt quotes has a planted quality (:func:`essay_quality`, fixed
  by its text) and each model a planted offset (:func:`evaluator_offset`); sub-scores are
  drawn around quality + offset, so evaluators agree about which essays are better, as real
  judges do, and adaptive evaluation has a signal to find.
- ``comparison``: a few lines of reasons and a last line ``WINNER: A``, ``WINNER: B`` or
  ``WINNER: tie``. The prompt quotes two essays in ``<essay id="A">…</essay>`` and
  ``<essay id="B">…</essay>`` blocks (:func:`quoted_pair`); the verdict follows the same planted
  :func:`essay_quality` the evaluation scores use (so a tournament and the scores agree on the
  truth): A wins when ``quality(A) - quality(B) + bias + noise`` exceeds
  :data:`COMPARISON_TIE_MARGIN`, B when it is below minus that margin, else a tie. ``bias`` is
  :data:`COMPARISON_POSITION_BIAS` (a planted preference for the essay shown first, as real
  judges have) and ``noise`` is normal with SD :data:`COMPARISON_NOISE_SD`, seeded by (prompt,
  model, replicate). Model offsets cancel in a comparison, so no judge is harsher than another.

Every text says in its first line that it is synthetic, so nobody mistakes it for a model's
answer. :func:`synthetic_completion` is pure and is shared with the mock HTTP server.
"""

from __future__ import annotations

import hashlib
import random
import re
import time

from ..types import Stage
from .base import GenerationRequest, GenerationResult, LLMProvider, Usage

OFFLINE_PROVIDER_NAME = "offline"
SYNTHETIC_MARKER = "[synthetic text from the DayDreaming offline provider - not a language model]"

_WORD = re.compile(r"[A-Za-z][A-Za-z-]{3,}")
_STOPWORDS = frozenset(
    """
    about above after again against also among another because been before being below
    between both cannot could does doing down during each every from further have having
    here into itself just many more most much must only other over same should some such
    than that their theirs them then there these they this those through under until upon
    very were what when where which while whom whose will with within without would your
    yours yourself essay-idea stage concept concepts combination response write writing
    following given please answer notes note text using make like each
    """.split()
)
_FALLBACK_WORDS = (
    "pattern",
    "signal",
    "memory",
    "network",
    "constraint",
    "feedback",
    "search",
    "structure",
    "boundary",
    "variation",
    "selection",
    "analogy",
    "process",
    "tension",
    "scale",
    "loop",
)
_LINK_PHRASES = (
    "may constrain",
    "could amplify",
    "echoes",
    "offers a lens on",
    "depends on",
    "might be a special case of",
    "trades off against",
    "could be measured through",
)
_ESSAY_OPENERS = (
    "This synthetic essay connects {a} and {b}.",
    "Consider how {a} relates to {b}.",
    "A useful starting point is the pairing of {a} and {b}.",
    "One way to frame the question is to ask how {a} shapes {b}.",
    "It is tempting to treat {a} and {b} separately.",
)
_CRITERIA = (("Originality", 3), ("Coherence", 3), ("Depth", 4))


def count_tokens(text: str) -> int:
    """Approximate token count: whitespace-separated pieces (no tokenizer offline)."""
    return len(text.split())


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut after its first ``max_tokens`` whitespace-separated pieces (layout kept)."""
    if max_tokens <= 0:
        return ""
    matches = list(re.finditer(r"\S+", text))
    if len(matches) <= max_tokens:
        return text
    return text[: matches[max_tokens - 1].end()]


def _rng(prompt: str, stage: str, model: str, replicate: int) -> random.Random:
    # sha256 (not hash()) so the text is identical across processes and machines.
    digest = hashlib.sha256(f"{stage}\0{model}\0{replicate}\0{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _vocabulary(prompt: str) -> list[str]:
    """Distinct content words of the prompt in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(prompt):
        word = match.group(0).strip("-").lower()
        if len(word) >= 4 and word not in _STOPWORDS:
            seen.setdefault(word, None)
        if len(seen) >= 400:  # plenty to pick from; keeps long prompts cheap
            break
    words = list(seen)
    return words if len(words) >= 4 else words + list(_FALLBACK_WORDS)


def _pick(rng: random.Random, words: list[str], k: int) -> list[str]:
    return rng.sample(words, k) if len(words) >= k else [rng.choice(words) for _ in range(k)]


def _sentence(rng: random.Random, words: list[str]) -> str:
    a, b, c = _pick(rng, words, 3)
    return f"The idea of {a} {rng.choice(_LINK_PHRASES)} {b}, with {c} as the connecting thread."


def _draft(rng: random.Random, words: list[str], wants_tags: bool) -> str:
    lines = [SYNTHETIC_MARKER, "Notes on possible links:"]
    for i in range(rng.randint(6, 9)):
        a, b = _pick(rng, words, 2)
        lines.append(f"- Link {i + 1}: {a} {rng.choice(_LINK_PHRASES)} {b}.")
    if wants_tags:
        for stage_no in range(1, rng.randint(1, 3) + 1):
            a, b = _pick(rng, words, 2)
            lines += [
                "",
                f'<essay-idea stage="{stage_no}">',
                f"Synthetic idea {stage_no}: combine {a} and {b}.",
                _sentence(rng, words),
                _sentence(rng, words),
                "</essay-idea>",
            ]
    return "\n".join(lines) + "\n"


def _essay(rng: random.Random, words: list[str]) -> str:
    a, b = _pick(rng, words, 2)
    parts = [SYNTHETIC_MARKER, f"# On {a} and {b}"]
    for _ in range(rng.randint(3, 5)):
        c, d = _pick(rng, words, 2)
        sentences = [rng.choice(_ESSAY_OPENERS).format(a=c, b=d)]
        sentences += [_sentence(rng, words) for _ in range(rng.randint(2, 4))]
        parts.append(" ".join(sentences))
    return "\n\n".join(parts) + "\n"


_QUOTE_LINE = re.compile(r"^\s*(?:---+|```+|\*\*\*+)\s*$", re.MULTILINE)
_QUALITY_NOISE = 0.12
"""SD of one criterion's draw around the essay's planted quality (share of the criterion's points)."""


def quoted_essay(prompt: str) -> str:
    """The essay an evaluation prompt quotes: the text between its first and last delimiter line
    (``---``, as the project's evaluation templates quote ``response``); failing that, the text
    after the last synthetic marker; failing that, the whole prompt."""
    delimiters = list(_QUOTE_LINE.finditer(prompt))
    if len(delimiters) >= 2:
        return prompt[delimiters[0].end():delimiters[-1].start()]
    marker = prompt.rfind(SYNTHETIC_MARKER)
    return prompt[marker:] if marker >= 0 else prompt


def _unit(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (sha256: identical across processes and machines)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def essay_quality(essay: str) -> float:
    """The planted quality of an essay in [0.1, 0.9]: fixed by its text (whitespace ignored), so
    every evaluator sees the same quality and adaptive allocation has something to find."""
    return 0.1 + 0.8 * _unit("quality\0" + " ".join(essay.split()))


def evaluator_offset(model: str) -> float:
    """The planted offset of an evaluation model, in [-0.1, 0.1] of the scale (a harsh or a
    lenient judge)."""
    return 0.2 * _unit("offset\0" + model) - 0.1


COMPARISON_POSITION_BIAS = 0.05
"""Planted advantage of the essay shown first (position A), on the quality scale."""
COMPARISON_NOISE_SD = 0.1
"""SD of a comparison's noise on the quality difference."""
COMPARISON_TIE_MARGIN = 0.02
"""A comparison whose noisy difference is within this margin is a tie."""

_ESSAY_BLOCK = re.compile(r"""<essay\s+id\s*=\s*["']?([AB])["']?\s*>""", re.IGNORECASE)
_ESSAY_END = re.compile(r"</essay\s*>", re.IGNORECASE)


def quoted_pair(prompt: str) -> tuple[str, str] | None:
    """The two essays a comparison prompt quotes, ``(A, B)``: the text of the first
    ``<essay id="A">…</essay>`` and the first ``<essay id="B">…</essay>`` block; ``None`` when
    either block is missing."""
    found: dict[str, str] = {}
    for opener in _ESSAY_BLOCK.finditer(prompt):
        letter = opener.group(1).upper()
        closer = _ESSAY_END.search(prompt, opener.end())
        if letter not in found and closer is not None:
            found[letter] = prompt[opener.end():closer.start()]
        if len(found) == 2:
            return found["A"], found["B"]
    return None


def _comparison(rng: random.Random, words: list[str], pair: tuple[str, str] | None) -> str:
    quality_a, quality_b = (essay_quality(pair[0]), essay_quality(pair[1])) if pair else (0.5, 0.5)
    margin = quality_a - quality_b + COMPARISON_POSITION_BIAS + rng.gauss(0.0, COMPARISON_NOISE_SD)
    winner = "A" if margin > COMPARISON_TIE_MARGIN else "B" if margin < -COMPARISON_TIE_MARGIN else "tie"
    lines = [SYNTHETIC_MARKER, "Comparing the two essays:"]
    for letter in ("A", "B"):
        lines.append(f"- Essay {letter}: {_sentence(rng, words)}")
    if winner == "tie":
        lines.append("- Neither essay is clearly stronger.")
    else:
        lines.append(f"- On balance essay {winner} is stronger and more original.")
    lines.append(f"WINNER: {winner}")
    return "\n".join(lines) + "\n"


def _evaluation(rng: random.Random, words: list[str], quality: float) -> str:
    lines = [SYNTHETIC_MARKER, "Brief reasoning:"]
    total = 0.0
    for criterion, out_of in _CRITERIA:
        share = min(1.0, max(0.0, rng.gauss(quality, _QUALITY_NOISE)))
        value = round(share * out_of)
        total += value
        lines.append(f"- The response touches on {rng.choice(words)} ({criterion.lower()}).")
        lines.append(f"{criterion}: {value}/{out_of}")
    adjustment = rng.choice((-0.5, 0.0, 0.0, 0.5))
    score = min(10.0, max(0.0, total + adjustment))
    if adjustment:
        lines.append(f"Overall impression adjusts the sum by {adjustment:+.1f}.")
    lines.append(f"SCORE: {score:g}")
    return "\n".join(lines) + "\n"


def synthetic_completion(prompt: str, stage: Stage | str, model: str, replicate: int = 1) -> str:
    """Deterministic, stage-shaped synthetic text for ``prompt`` (see the module docstring).

    Args:
        prompt: the rendered prompt; its words are reused, and ``essay-idea`` in it asks a
            draft for ``<essay-idea stage="N">`` blocks.
        stage: ``draft``, ``essay``, ``evaluation`` or ``comparison`` (anything else is treated
            as a draft).
        model: provider model name; part of the seed.
        replicate: replicate number; part of the seed.

    Returns:
        The text, first line :data:`SYNTHETIC_MARKER`. The same arguments always give the same
        text; evaluations end with a ``SCORE: N`` line, comparisons with ``WINNER: A|B|tie``.
    """
    rng = _rng(prompt, str(stage), model, replicate)
    words = _vocabulary(prompt)
    if stage == "evaluation":
        quality = essay_quality(quoted_essay(prompt)) + evaluator_offset(model)
        return _evaluation(rng, words, quality)
    if stage == "comparison":
        return _comparison(rng, words, quoted_pair(prompt))
    if stage == "essay":
        return _essay(rng, words)
    return _draft(rng, words, wants_tags="essay-idea" in prompt)


def synthetic_result_text(
    prompt: str, stage: Stage | str, model: str, replicate: int, max_tokens: int | None
) -> tuple[str, str]:
    """(text, finish_reason): the synthetic text, cut to ``max_tokens`` with ``length`` if over."""
    text = synthetic_completion(prompt, stage, model, replicate)
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return truncate_to_tokens(text, max_tokens), "length"
    return text, "stop"


class OfflineProvider(LLMProvider):
    """Serves every request with :func:`synthetic_completion`: no network, cost 0.

    A request's ``max_tokens`` is honoured the way an API would: longer text is cut and the
    finish reason is ``length``, so truncation handling can be exercised offline.
    """

    name = OFFLINE_PROVIDER_NAME

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Return the synthetic completion for ``request`` (never raises for valid input)."""
        started = time.perf_counter()
        text, finish_reason = synthetic_result_text(
            request.prompt, request.stage, request.model, request.replicate, request.max_tokens
        )
        prompt_tokens = count_tokens(request.prompt)
        completion_tokens = count_tokens(text)
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            cost_usd=0.0,
            cost_source="offline",
        )
        return GenerationResult(
            text=text,
            finish_reason=finish_reason,
            provider=self.name,
            model=request.model,
            usage=usage,
            duration_s=time.perf_counter() - started,
        )
