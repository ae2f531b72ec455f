"""Stage settings: what a stage run may change without changing the cohort."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageSettings:
    """Settings of one stage's run."""

    force: bool = False
    """Regenerate every phase even when reusable artefacts exist."""
    min_lines: int = 0
    """Minimum non-empty lines of raw output (drafts); fewer is a failure after persisting."""
    max_tokens: int | None = None
    """Completion token cap passed to the model."""
    temperature: float | None = None
    """Sampling temperature passed to the model."""
