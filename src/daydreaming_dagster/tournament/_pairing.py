"""Swiss-system pairing for the comparison stage: a pure function of the pool, seed and verdicts.

Round 1 pairs essays by a shuffle seeded by ``(seed, round)``. Each later round orders the
essays by current standing (wins + ½ ties over the verdicts so far) and pairs each essay with
the nearest-standing essay it has not met, backtracking when a greedy choice would leave
someone without a fresh opponent; rematches are allowed only when no rematch-free pairing
exists (then as few as the search finds). With an odd pool one essay sits out (a *bye*): the
lowest-standing essay among those that have not had one.

Determinism: ids are sorted before anything is shuffled and every random choice comes from a
``random.Random`` seeded with a sha256 of ``(seed, round_number)``, so neither the order of the
inputs nor ``PYTHONHASHSEED`` changes a pairing.

Byes are not recorded as verdicts, so they are inferred: an essay that sat out has played fewer
games than the others. The bye goes to an essay among those with the most games played (that
is, without a bye so far); a comparison that failed to parse also lowers an essay's count, which
only makes a bye for it less likely.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Winner = Literal["A", "B", "tie"]
WINNERS: tuple[Winner, ...] = ("A", "B", "tie")

_SEARCH_BUDGET = 20_000
"""Backtracking steps tried per rematch allowance before allowing one more rematch."""


@dataclass(frozen=True)
class Verdict:
    """One judged comparison: essay A (shown first), essay B and which one won."""

    essay_a: str
    """The essay shown first (position A)."""
    essay_b: str
    """The essay shown second (position B)."""
    winner: Winner
    """``"A"``, ``"B"`` or ``"tie"``."""

    def __post_init__(self) -> None:
        if self.winner not in WINNERS:
            raise ValueError(f"winner must be one of {', '.join(WINNERS)}, got {self.winner!r}")
        if self.essay_a == self.essay_b:
            raise ValueError(f"an essay cannot be compared with itself: {self.essay_a!r}")


def expected_pairs(pool_size: int) -> int:
    """Pairs in one Swiss round of ``pool_size`` essays (one sits out when odd).

    A tournament of ``rounds`` rounds makes ``rounds * expected_pairs(pool) * orders * judges *
    templates`` judge calls (``orders`` is 2 with ``both_orders``).
    """
    if pool_size < 0:
        raise ValueError(f"pool_size must be >= 0, got {pool_size}")
    return pool_size // 2


def _check_ids(essay_ids: Iterable[str]) -> list[str]:
    ids = list(essay_ids)
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate essay ids in the pool: {', '.join(duplicates)}")
    return sorted(ids)


def _in_pool(verdicts: Iterable[Verdict], pool: set[str]) -> list[Verdict]:
    return [v for v in verdicts if v.essay_a in pool and v.essay_b in pool]


def standings(essay_ids: Iterable[str], verdicts: Iterable[Verdict]) -> dict[str, float]:
    """Each essay's standing: wins + ½ ties over the verdicts between essays of the pool.

    Returns a dict keyed by essay id in sorted id order (essays without a verdict have 0.0);
    verdicts naming an essay outside ``essay_ids`` are ignored.
    """
    ids = _check_ids(essay_ids)
    points = dict.fromkeys(ids, 0.0)
    for v in _in_pool(verdicts, set(ids)):
        if v.winner == "tie":
            points[v.essay_a] += 0.5
            points[v.essay_b] += 0.5
        else:
            points[v.essay_a if v.winner == "A" else v.essay_b] += 1.0
    return points


def _round_rng(seed: int | str, round_number: int) -> random.Random:
    digest = hashlib.sha256(f"swiss\0{seed}\0{round_number}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _orient(a: str, b: str, shown_first: Counter[str], rng: random.Random) -> tuple[str, str]:
    """Show first the essay that has been shown first less often (a seeded coin on a tie)."""
    if shown_first[a] != shown_first[b]:
        return (a, b) if shown_first[a] < shown_first[b] else (b, a)
    return (a, b) if rng.random() < 0.5 else (b, a)


def _match(
    order: list[str], points: dict[str, float], met: set[frozenset[str]], allowance: int
) -> list[tuple[str, str]] | None:
    """Pair ``order`` (best standing first), each essay with the nearest-standing unpaired essay,
    using at most ``allowance`` rematches; backtracks, giving up after :data:`_SEARCH_BUDGET`."""
    budget = [_SEARCH_BUDGET]

    def solve(remaining: list[str], rematches_left: int) -> list[tuple[str, str]] | None:
        if not remaining:
            return []
        first, rest = remaining[0], remaining[1:]
        # nearest standing first; among equals, the order (standing, then seeded tie-break)
        candidates = sorted(range(len(rest)), key=lambda k: (abs(points[first] - points[rest[k]]), k))
        for k in candidates:
            budget[0] -= 1
            if budget[0] < 0:
                return None
            rematch = frozenset((first, rest[k])) in met
            if rematch and rematches_left == 0:
                continue
            tail = solve(rest[:k] + rest[k + 1:], rematches_left - rematch)
            if tail is not None:
                return [(first, rest[k]), *tail]
        return None

    return solve(order, allowance)


def swiss_pairings(
    essay_ids: Iterable[str],
    *,
    round_number: int,
    seed: int | str,
    verdicts: Sequence[Verdict] = (),
) -> list[tuple[str, str]]:
    """The pairs of one Swiss round, each as ``(essay shown first, essay shown second)``.

    Args:
        essay_ids: the pool (order irrelevant; duplicates are a ``ValueError``).
        round_number: 1-based round; round 1 is a seeded shuffle, later rounds pair by standing.
        seed: the cohort's seed; with ``round_number`` it seeds every random choice.
        verdicts: all verdicts of the rounds before this one (both orders, every judge); only
            those between essays of the pool count.

    Returns:
        ``len(pool) // 2`` pairs, every essay in at most one pair, strongest standings first.
        Later rounds contain no rematch unless none can be avoided; each essay's position
        (first or second) alternates so that it is shown first about as often as second.
    """
    if round_number < 1:
        raise ValueError(f"round_number must be >= 1, got {round_number}")
    ids = _check_ids(essay_ids)
    rng = _round_rng(seed, round_number)
    order = ids[:]
    rng.shuffle(order)
    if len(order) < 2:
        return []
    pool = set(ids)
    history = _in_pool(verdicts, pool)
    if round_number == 1 or not history:
        return [(order[i], order[i + 1]) for i in range(0, len(order) - 1, 2)]

    points = standings(ids, history)
    games = Counter(e for v in history for e in (v.essay_a, v.essay_b))
    shown_first = Counter(v.essay_a for v in history)
    met = {frozenset((v.essay_a, v.essay_b)) for v in history}
    tie_break = {essay: k for k, essay in enumerate(order)}
    ranked = sorted(ids, key=lambda e: (-points[e], tie_break[e]))

    # Bye groups in order of preference: the lowest standing among essays without a bye first;
    # an essay gets a second bye only when no one without a bye can sit out.
    groups: list[list[str | None]] = [[None]]
    if len(ranked) % 2:
        most = max(games[e] for e in ranked)
        by_standing = sorted(ranked, key=lambda e: (points[e], -tie_break[e]))
        groups = [[e for e in by_standing if games[e] == most], [e for e in by_standing if games[e] < most]]

    pairs: list[tuple[str, str]] | None = None
    for group in groups:
        for allowance in range(len(ranked) // 2 + 1):
            for bye in group:
                players = [e for e in ranked if e != bye]
                pairs = _match(players, points, met, allowance)
                if pairs is not None:
                    break
            if pairs is not None:
                break
        if pairs is not None:
            break
    if pairs is None:  # unreachable: with allowance = all pairs, any pairing is accepted
        raise RuntimeError("no pairing found")
    return [_orient(a, b, shown_first, rng) for a, b in pairs]
