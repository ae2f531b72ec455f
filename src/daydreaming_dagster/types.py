"""Stage and phase vocabulary shared by every layer."""

from __future__ import annotations

from typing import Literal, get_args

Stage = Literal["draft", "essay", "evaluation", "comparison"]
"""Generation stages. A ``comparison`` has two parent essays (A and B, in the order shown to
its judge): ``parent_gen_id`` is A and ``parent_gen_ids`` lists both."""
Phase = Literal["prompt", "raw", "parsed"]

STAGES: tuple[Stage, ...] = get_args(Stage)
DESIGN_STAGES: tuple[Stage, ...] = ("draft", "essay", "evaluation")
"""The stages a cohort's design rows declare; ``comparison`` is added by a spec's tournament."""
PHASES: tuple[Phase, ...] = get_args(Phase)

_PARENT_STAGE: dict[str, Stage | None] = {"draft": None, "essay": "draft", "evaluation": "essay", "comparison": "essay"}
_CHILD_STAGE: dict[str, Stage | None] = {"draft": "essay", "essay": "evaluation", "evaluation": None, "comparison": None}


def ensure_stage(stage: object) -> Stage:
    """Return ``stage`` as a :data:`Stage`, or raise ``ValueError`` naming the known stages."""
    if not isinstance(stage, str) or stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}")
    return stage  # type: ignore[return-value]


def parent_stage(stage: Stage) -> Stage | None:
    """The stage whose parsed output feeds ``stage`` (``None`` for drafts)."""
    return _PARENT_STAGE[ensure_stage(stage)]


def child_stage(stage: Stage) -> Stage | None:
    """The stage that consumes ``stage``'s parsed output first (``None`` for evaluations and
    comparisons; essays also feed comparisons, see :func:`child_stages`)."""
    return _CHILD_STAGE[ensure_stage(stage)]


def child_stages(stage: Stage) -> tuple[Stage, ...]:
    """Every stage that consumes ``stage``'s parsed output (essays feed evaluations and comparisons)."""
    ensure_stage(stage)
    return tuple(s for s in STAGES if _PARENT_STAGE[s] == stage)


def parent_count(stage: Stage) -> int:
    """How many parents a generation of ``stage`` has (comparisons read two essays)."""
    return {"draft": 0, "comparison": 2}.get(ensure_stage(stage), 1)
