"""Swiss pairing: determinism, one game per essay per round, rematch avoidance, bye rotation."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter

import pytest

from daydreaming_dagster.tournament import (
    Verdict,
    expected_pairs,
    standings,
    swiss_pairings,
)

POOL = [f"e_{i:02d}" for i in range(16)]


def _judge(quality: dict[str, float], rng: random.Random, a: str, b: str) -> Verdict:
    """A noisy judge following planted quality (so standings spread out as in real runs)."""
    diff = quality[a] - quality[b] + rng.gauss(0, 0.3)
    winner = "tie" if abs(diff) < 0.05 else ("A" if diff > 0 else "B")
    return Verdict(a, b, winner)  # type: ignore[arg-type]


def play(pool: list[str], rounds: int, seed: int, *, both_orders: bool = True) -> list[list[tuple[str, str]]]:
    """Play a whole tournament; returns each round's pairs."""
    rng = random.Random(seed)
    quality = {e: rng.random() for e in sorted(pool)}
    verdicts: list[Verdict] = []
    played = []
    for r in range(1, rounds + 1):
        pairs = swiss_pairings(pool, round_number=r, seed=seed, verdicts=verdicts)
        played.append(pairs)
        for a, b in pairs:
            verdicts.append(_judge(quality, rng, a, b))
            if both_orders:
                verdicts.append(_judge(quality, rng, b, a))
    return played


def _check_round(pool: list[str], pairs: list[tuple[str, str]]) -> None:
    seen = [e for pair in pairs for e in pair]
    assert len(seen) == len(set(seen)), "an essay is paired twice in one round"
    assert set(seen) <= set(pool)
    assert len(pairs) == expected_pairs(len(pool))


def test_same_inputs_same_pairings() -> None:
    assert play(POOL, 6, seed=7) == play(POOL, 6, seed=7)


def test_input_order_does_not_matter() -> None:
    verdicts = [Verdict("e_00", "e_01", "A"), Verdict("e_02", "e_03", "tie"), Verdict("e_04", "e_05", "B")]
    shuffled = POOL[::-1]
    for r in (1, 2):
        assert swiss_pairings(POOL, round_number=r, seed=3, verdicts=verdicts) == swiss_pairings(
            shuffled, round_number=r, seed=3, verdicts=verdicts[::-1]
        )


def test_different_seed_or_round_gives_a_different_first_round() -> None:
    first = swiss_pairings(POOL, round_number=1, seed=1, verdicts=[])
    assert swiss_pairings(POOL, round_number=1, seed=2, verdicts=[]) != first
    assert swiss_pairings(POOL, round_number=1, seed="1", verdicts=[]) == first  # seed as text
    assert len({tuple(swiss_pairings(POOL, round_number=1, seed=s)) for s in range(20)}) == 20


def test_hash_seed_does_not_matter() -> None:
    code = (
        "import json, random\n"
        "from tests.tournament.test_pairing import play, POOL\n"
        "print(json.dumps(play(POOL[:11], 5, seed=5)))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
        ).stdout
        for hash_seed in ("0", "1", "12345")
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == json.loads(json.dumps(play(POOL[:11], 5, seed=5)))


@pytest.mark.parametrize(("size", "rounds"), [(16, 8), (10, 6), (9, 6), (40, 7)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_round_pairs_everyone_once_without_rematches(size: int, rounds: int, seed: int) -> None:
    pool = POOL[:size] if size <= 16 else [f"x{i}" for i in range(size)]
    met: set[frozenset[str]] = set()
    for pairs in play(pool, rounds, seed):
        _check_round(pool, pairs)
        for a, b in pairs:
            assert frozenset((a, b)) not in met, f"avoidable rematch {a} vs {b}"
            met.add(frozenset((a, b)))


def test_rematches_only_when_unavoidable() -> None:
    pool = POOL[:4]
    rounds = play(pool, 5, seed=3)
    first_three = [frozenset(p) for pairs in rounds[:3] for p in pairs]
    assert len(set(first_three)) == 6  # a full round robin before any rematch
    for pairs in rounds[3:]:
        _check_round(pool, pairs)  # then everyone still plays each round


def test_bye_rotates_to_lowest_standing_without_a_bye() -> None:
    pool = POOL[:7]
    byes = []
    for pairs in play(pool, 7, seed=11):
        _check_round(pool, pairs)
        (bye,) = set(pool) - {e for p in pairs for e in p}
        byes.append(bye)
    assert sorted(byes) == sorted(pool)  # each essay sits out exactly once in 7 rounds


def test_bye_goes_to_the_lowest_standing() -> None:
    pool = ["a", "b", "c", "d", "e"]
    # round 1: a beat b twice, c beat d twice, e sat out
    verdicts = [Verdict("a", "b", "A"), Verdict("b", "a", "B"), Verdict("c", "d", "A"), Verdict("d", "c", "B")]
    pairs = swiss_pairings(pool, round_number=2, seed=0, verdicts=verdicts)
    paired = {e for p in pairs for e in p}
    assert set(pool) - paired in ({"b"}, {"d"})  # lowest standing among those who played
    assert "e" in paired


def test_later_rounds_pair_similar_standings() -> None:
    pool = [f"s{i}" for i in range(8)]
    # a strict order: s0 beat everyone listed after it in round-1-like results (no meetings
    # between neighbours, so the nearest-standing pairs are all fresh)
    verdicts = [Verdict("s0", "s7", "A"), Verdict("s1", "s6", "A"), Verdict("s2", "s5", "A"),
                Verdict("s3", "s4", "A"), Verdict("s0", "s6", "A"), Verdict("s1", "s7", "A")]
    points = standings(pool, verdicts)
    assert points == {"s0": 2.0, "s1": 2.0, "s2": 1.0, "s3": 1.0, "s4": 0.0, "s5": 0.0,
                      "s6": 0.0, "s7": 0.0}
    pairs = swiss_pairings(pool, round_number=2, seed=4, verdicts=verdicts)
    assert [sorted(p) for p in pairs][:2] == [["s0", "s1"], ["s2", "s3"]]
    assert all(points[a] == points[b] for a, b in pairs)


def test_positions_balance_without_both_orders() -> None:
    pool = POOL[:12]
    first = Counter()
    second = Counter()
    for pairs in play(pool, 6, seed=9, both_orders=False):
        for a, b in pairs:
            first[a] += 1
            second[b] += 1
    assert all(abs(first[e] - second[e]) <= 2 for e in pool), (first, second)


def test_standings_count_wins_and_half_ties_within_the_pool() -> None:
    verdicts = [Verdict("a", "b", "A"), Verdict("b", "a", "tie"), Verdict("a", "z", "B")]
    assert standings(["b", "a"], verdicts) == {"a": 1.5, "b": 0.5}
    assert list(standings(["b", "a"], verdicts)) == ["a", "b"]


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="winner"):
        Verdict("a", "b", "C")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="itself"):
        Verdict("a", "a", "A")
    with pytest.raises(ValueError, match="duplicate"):
        swiss_pairings(["a", "a", "b"], round_number=1, seed=0, verdicts=[])
    with pytest.raises(ValueError, match="round_number"):
        swiss_pairings(["a", "b"], round_number=0, seed=0, verdicts=[])
    with pytest.raises(ValueError, match="pool_size"):
        expected_pairs(-1)
    assert swiss_pairings(["a"], round_number=1, seed=0) == []
    assert [expected_pairs(n) for n in (0, 1, 2, 7, 20)] == [0, 0, 1, 3, 10]
