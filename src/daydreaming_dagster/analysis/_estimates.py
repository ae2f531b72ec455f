"""Percentile intervals of bootstrap draws (the cluster bootstrap over drafts, or essays,
behind variance shares and Krippendorff's alpha). Essay means come from
``_essay_model`` and level means from ``_levels``: both are model-based, not resampled."""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["CONFIDENCE", "percentile_ci"]

CONFIDENCE = 0.95
_TAIL = (1 - CONFIDENCE) / 2 * 100


def percentile_ci(draws: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5th and 97.5th percentiles of ``draws`` along ``axis``, ignoring NaN."""
    if draws.size == 0:
        shape = draws.shape[1:] if axis == 0 else draws.shape[:axis] + draws.shape[axis + 1:]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, by design
        low, high = np.nanpercentile(draws, [_TAIL, 100 - _TAIL], axis=axis)
    return low, high
