"""Stage and phase vocabulary shared by every layer."""

from __future__ import annotations

from typing import Literal, get_args

Stage = Literal["draft", "essay", "evaluation", "comparison"]
Phase = Literal["prompt", "raw", "parsed"]

STAGES: tuple[Stage, ...] = get_args(Stage)
PHASES: tuple[Phase, ...] = get_args(Phase)

_PARENT_STAGE: dict[str, Stage | None] = {
    "draft": None, "essay": "draft", "evaluation": "essay", "comparison": "essay"
}
_CHILD_STAGE: dict[str, Stage | None] = {
    "draft": "essay", "essay": "evaluation", "evaluation": None, "comparison": None
}


def ensure_stage(stage: object) -> Stage:
    """Return ``stage`` as a :data:`Stage`, or raise ``ValueError`` naming the known stages."""
    if not isinstance(stage, str) or stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}")
    return stage  # type: ignore[return-value]


def parent_stage(stage: Stage) -> Stage | None:
    """The stage whose parsed output feeds ``stage`` (``None`` for drafts)."""
    return _PARENT_STAGE[ensure_stage(stage)]


def child_stage(stage: Stage) -> Stage | None:
    """The stage that consumes ``stage``'s parsed output (``None`` for evaluations)."""
    return _CHILD_STAGE[ensure_stage(stage)]
