"""Score scales: ``"<low>-<high>"`` strings such as ``0-10`` or ``0-9`` (DESIGN §5, §7).

Evaluation parsers record the scale a score was given on; human ratings carry the scale the
rater was shown; the analysis normalises scores on different scales to 0-1 before combining
them. All of them read scales through :func:`scale_bounds`.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_SCALE", "normalise_score", "scale_bounds"]

DEFAULT_SCALE = "0-10"
_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[-\u2013]\s*(-?\d+(?:\.\d+)?)\s*$")


def scale_bounds(scale: str) -> tuple[float, float]:
    """``"0-9"`` → ``(0.0, 9.0)``; raises ``ValueError`` naming the value when it is no scale."""
    match = _SCALE.fullmatch(scale or "")
    if match is None:
        raise ValueError(f"invalid scale {scale!r}: write it as '<low>-<high>', for example '0-10'")
    low, high = float(match.group(1)), float(match.group(2))
    if not high > low:
        raise ValueError(f"invalid scale {scale!r}: the upper bound must exceed the lower one")
    return low, high


def normalise_score(score: float, scale: str) -> float:
    """Map ``score`` on ``scale`` to 0-1 (0 = the scale's lowest value, 1 = its highest)."""
    low, high = scale_bounds(scale)
    return (score - low) / (high - low)
