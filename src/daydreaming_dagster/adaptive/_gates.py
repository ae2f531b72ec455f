"""The essay gate: which drafts get the expensive essay templates (pure, no I/O).

Each draft's *screen score* is the mean of the screen evaluations (``screen.evaluation`` templates,
by ``screen.evaluation_llm`` models, every replicate) of its screen essays
(``screen.essay_template``). Drafts are grouped by ``keep.per`` and ranked within each group by
screen score (highest first; ties broken by a seeded digest of the draft id, so the kept share
is exact and reproducible); the top ``keep.top`` of each group pass. A draft without any screen
score (no screen essay, or every screen evaluation failed) does not pass. The gate decides only
once every screen evaluation has an outcome.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..cohorts.membership import Membership, MembershipRow
from ..cohorts.spending import EssayGate
from ..results.scores import evaluator_label

__all__ = ["GateDecision", "ScreenScore", "decide_gate", "screen_evaluations"]

Outcome = float | str
"""A score, or ``"failed"`` / ``"pending"``."""


@dataclass(frozen=True)
class ScreenScore:
    """One screen evaluation that decided a draft."""

    evaluation_gen_id: str
    evaluator: str
    score: float | None
    """``None`` when the evaluation failed."""


@dataclass(frozen=True)
class GateDecision:
    """Whether one draft passed the essay gate, and the screen scores that decided it."""

    draft_gen_id: str
    group: str
    """The ``keep.per`` values of the draft (``all`` without ``per``)."""
    screen_score: float | None
    """Mean of the screen scores; ``None`` without any."""
    rank: int
    """1-based rank in its group."""
    kept_in_group: int
    group_size: int
    passed: bool
    scores: tuple[ScreenScore, ...]

    @property
    def reason(self) -> str:
        """One sentence for status, the report and the explorer."""
        if self.screen_score is None:
            return "no screen score (no screen essay, or every screen evaluation failed)"
        verdict = "kept" if self.passed else "gated"
        return (f"{verdict}: screen score {self.screen_score:.2f} ranks {self.rank} of {self.group_size} in "
                f"{self.group} (top {self.kept_in_group} kept)")


def screen_evaluations(gate: EssayGate, membership: Membership) -> dict[str, list[MembershipRow]]:
    """Draft id -> its screen evaluations, in membership order."""
    screen_essays = {r.gen_id: r.parent_gen_id for r in membership.rows("essay")
                     if r.template_id == gate.screen_essay_template}
    screens: dict[str, list[MembershipRow]] = defaultdict(list)
    for row in membership.rows("evaluation"):
        draft = screen_essays.get(row.parent_gen_id or "")
        if draft is None or row.template_id not in gate.screen_evaluation_templates:
            continue
        if gate.screen_evaluation_llms and (row.llm_model_id or "") not in gate.screen_evaluation_llms:
            continue
        screens[draft].append(row)
    return screens


def _group(gate: EssayGate, draft: MembershipRow) -> str:
    values = {"draft_template": draft.template_id, "draft_llm": draft.llm_model_id or "", "combo_id": draft.combo_id}
    return ", ".join(f"{axis}={values[axis]}" for axis in gate.per) or "all drafts"


def decide_gate(gate: EssayGate, membership: Membership, outcome: Callable[[str], Outcome],
                seed: int) -> list[GateDecision] | None:
    """Every draft's gate decision, or ``None`` while some screen evaluation has no outcome."""
    screens = screen_evaluations(gate, membership)
    scored: dict[str, tuple[ScreenScore, ...]] = {}
    for draft in membership.rows("draft"):
        entries = []
        for row in screens.get(draft.gen_id, ()):
            result = outcome(row.gen_id)
            if result == "pending":
                return None
            score = result if isinstance(result, float) else None
            entries.append(ScreenScore(row.gen_id, evaluator_label(row.template_id, row.llm_model_id) or "", score))
        scored[draft.gen_id] = tuple(entries)
    groups: dict[str, list[MembershipRow]] = defaultdict(list)
    for draft in membership.rows("draft"):
        groups[_group(gate, draft)].append(draft)
    decisions: list[GateDecision] = []
    for group, drafts in groups.items():
        def mean(draft_id: str) -> float | None:
            values = [s.score for s in scored[draft_id] if s.score is not None]
            return sum(values) / len(values) if values else None

        def order(draft: MembershipRow) -> tuple[float, str]:
            value = mean(draft.gen_id)
            tiebreak = hashlib.sha256(f"{seed}\0{draft.gen_id}".encode()).hexdigest()
            return (-value if value is not None else math.inf, tiebreak)

        ranked = sorted(drafts, key=order)
        kept = gate.kept_in(len(ranked))
        for rank, draft in enumerate(ranked, start=1):
            value = mean(draft.gen_id)
            decisions.append(GateDecision(draft.gen_id, group, value, rank, kept, len(ranked),
                                          value is not None and rank <= kept, scored[draft.gen_id]))
    return decisions


def gated_essays(gate: EssayGate, essays: Sequence[MembershipRow]) -> list[MembershipRow]:
    """The essays the gate holds back (their template is gated)."""
    return [row for row in essays if row.template_id in gate.templates]
