"""Where the next evaluations go: the first round's rotation and the later rounds' greedy choice.

Pure functions of the rule, the seed and the scores so far (no I/O, no Dagster):

- :func:`first_round`: every essay gets ``first`` evaluations, the evaluators rotated across
  essays so every evaluator is seen about equally often and evaluators share essays (their
  offsets are then identified: the design is connected).
- :func:`next_round`: from the fitted essay model, each essay's probability of being in the
  top ``k`` (``p``). An essay is *decided* when ``max(p, 1 - p) >= confidence``; the goal is
  met when every essay is decided. Otherwise up to ``batch`` evaluations go to undecided
  essays, greedily by the expected change of the answer: ``p (1 - p)`` (how uncertain the
  essay's membership is) times the share by which one more score shrinks its standard error
  (``1 - sqrt(n / (n + 1))`` with ``n`` scores). Within an essay, evaluators not yet seen on it
  come first (least used overall first), then replicates.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["Candidate", "Pick", "RoundChoice", "TopSetModel", "first_round", "next_round", "stopping_value"]


@dataclass(frozen=True)
class Candidate:
    """One evaluation the design allows."""

    gen_id: str
    essay_gen_id: str
    evaluator: str
    """``<evaluation_template>/<evaluation_llm>`` (the scores table's evaluator label)."""
    replicate: int = 1


@dataclass(frozen=True)
class Pick:
    """An evaluation chosen for a round, and why."""

    gen_id: str
    reason: str


@dataclass(frozen=True)
class RoundChoice:
    """What :func:`next_round` decided."""

    picks: tuple[Pick, ...]
    stopping_value: float
    """``min over essays of max(p, 1 - p)``: the goal is met when it reaches the confidence."""
    undecided: int
    """Essays whose top-set membership is not yet decided."""
    ended: str | None
    """``goal met`` or ``design exhausted`` when no round follows; ``None`` otherwise."""


class TopSetModel(Protocol):
    """What allocation needs of the analysis layer's evaluator-adjusted essay model."""

    essay_ids: tuple[str, ...]
    n_scores: np.ndarray

    def top_k_probabilities(self, k: int, n_draws: int = 2000, seed: int = 0) -> np.ndarray: ...


def _tiebreak(seed: int, *parts: str) -> str:
    """A seeded, stable ordering key (sha256: the same on every machine)."""
    return hashlib.sha256("\0".join((str(seed), *parts)).encode()).hexdigest()


def _by_essay(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    grouped: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        grouped[candidate.essay_gen_id].append(candidate)
    return grouped


def first_round(candidates: Sequence[Candidate], first: int, seed: int,
                already: Mapping[str, int] | None = None) -> list[Pick]:
    """``first`` evaluations per essay (fewer when ``already`` counts some made before: a gate's
    screen), evaluators rotated across essays in membership order from a seeded start."""
    already = already or {}
    evaluators = sorted({c.evaluator for c in candidates})
    if not evaluators:
        return []
    start = int(_tiebreak(seed, "rotation")[:8], 16) % len(evaluators)
    position = {name: index for index, name in enumerate(evaluators)}
    picks: list[Pick] = []
    for index, (essay, own) in enumerate(_by_essay(candidates).items()):
        wanted = first - already.get(essay, 0)
        if wanted <= 0:
            continue
        # Essay i starts at evaluator (start + i * first): consecutive essays share evaluators
        # and every evaluator is used about equally often.
        offset = (start + index * first) % len(evaluators)
        ranked = sorted(own, key=lambda c: (c.replicate, (position[c.evaluator] - offset) % len(evaluators)))
        picks += [Pick(c.gen_id, f"first round ({c.evaluator})") for c in ranked[:wanted]]
    return picks


def stopping_value(probabilities: np.ndarray) -> float:
    """``min max(p, 1 - p)`` over essays (an essay without an estimate counts as 0.5)."""
    p = np.where(np.isnan(probabilities), 0.5, probabilities)
    return float(np.min(np.maximum(p, 1 - p))) if p.size else 1.0


def next_round(candidates: Sequence[Candidate], done: Sequence[str], model: TopSetModel, *, top: int,
               confidence: float, batch: int, seed: int, n_draws: int = 2000) -> RoundChoice:
    """The next round's evaluations (see the module docstring), or why there is none.

    ``done`` lists the evaluations already chosen (scored, failed or not); ``model`` is the
    essay model fitted on their scores. Essays the model does not know (no score yet) count
    as fully uncertain.
    """
    chosen = set(done)
    probabilities = model.top_k_probabilities(top, n_draws=n_draws, seed=seed)
    p_of = dict(zip(model.essay_ids, probabilities, strict=True))
    n_of = dict(zip(model.essay_ids, np.asarray(model.n_scores, dtype=float), strict=True))
    grouped = _by_essay(candidates)
    p_all = np.array([p_of.get(essay, math.nan) for essay in grouped], dtype=float)
    value = stopping_value(p_all)
    undecided = [essay for essay, p in zip(grouped, p_all, strict=True)
                 if math.isnan(p) or max(p, 1 - p) < confidence]
    if not undecided:
        return RoundChoice((), value, 0, "goal met")

    seen_on: dict[str, set[str]] = defaultdict(set)
    usage: Counter[str] = Counter()
    for candidate in candidates:
        if candidate.gen_id in chosen:
            seen_on[candidate.essay_gen_id].add(candidate.evaluator)
            usage[candidate.evaluator] += 1
    queues: dict[str, list[Candidate]] = {}
    for essay in undecided:
        remaining = [c for c in grouped[essay] if c.gen_id not in chosen]
        # Unseen evaluators first, the least used overall first; then replicates.
        remaining.sort(key=lambda c: (c.evaluator in seen_on[essay], usage[c.evaluator], c.replicate,
                                      _tiebreak(seed, c.gen_id)))
        if remaining:
            queues[essay] = remaining
    if not queues:
        return RoundChoice((), value, len(undecided), "design exhausted")

    def gain(essay: str, extra: int) -> float:
        p = p_of.get(essay, math.nan)
        uncertainty = 0.25 if math.isnan(p) else p * (1 - p)
        n = n_of.get(essay, 0.0) + extra
        return uncertainty * (1 - math.sqrt(n / (n + 1)))

    heap = [(-gain(essay, 0), _tiebreak(seed, essay), essay, 0) for essay in queues]
    heapq.heapify(heap)
    picks: list[Pick] = []
    while heap and len(picks) < batch:
        negative, key, essay, extra = heapq.heappop(heap)
        candidate = queues[essay][extra]
        p = p_of.get(essay, math.nan)
        where = "no estimate yet" if math.isnan(p) else f"P(top {top}) = {p:.2f}"
        unseen = "evaluator not yet seen on it" if candidate.evaluator not in seen_on[essay] else "replicate"
        picks.append(Pick(candidate.gen_id, f"{where}; {unseen} ({candidate.evaluator})"))
        seen_on[essay].add(candidate.evaluator)
        if extra + 1 < len(queues[essay]):
            heapq.heappush(heap, (-gain(essay, extra + 1), key, essay, extra + 1))
    return RoundChoice(tuple(picks), value, len(undecided), None)
