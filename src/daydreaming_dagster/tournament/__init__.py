"""Pairwise tournaments between essays: Swiss-system pairing (pure, no Dagster).

- :func:`swiss_pairings`: the pairs of one round from the pool, the seed and the verdicts so
  far (round 1 a seeded shuffle; later rounds by standing, avoiding rematches; one bye when odd).
- :func:`standings`: wins + ½ ties per essay.
- :func:`expected_pairs`: pairs per round for a pool size (for estimates).
- :class:`Verdict`: one judged comparison (essay A shown first, essay B, winner A/B/tie).
"""

from __future__ import annotations

from ._pairing import WINNERS, Verdict, Winner, expected_pairs, standings, swiss_pairings

__all__ = ["WINNERS", "Verdict", "Winner", "expected_pairs", "standings", "swiss_pairings"]
