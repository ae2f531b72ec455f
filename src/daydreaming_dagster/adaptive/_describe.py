"""Plain-text lines about a cohort's gate and adaptive rounds, for plans, estimates, status and
the report (one wording everywhere)."""

from __future__ import annotations

from ..cohorts.membership import Membership
from ..cohorts.spec import CohortSpec
from ..types import STAGES
from ._selection import Selection

__all__ = ["spending_lines"]

_GATED_SHOWN = 10


def _calls(membership: Membership, allowed: Selection | None) -> dict[str, int]:
    return {stage: sum(1 for r in membership.rows(stage)
                       if r.mode == "llm" and (allowed is None or allowed.allows(r.gen_id))) for stage in STAGES}


def _stages(calls: dict[str, int]) -> str:
    return ", ".join(f"{stage} {calls[stage]}" for stage in STAGES)


def spending_lines(spec: CohortSpec, selection: Selection, membership: Membership, *,
                   ended_by: str | None = None) -> list[str]:
    """What the gate and the adaptive rounds decided so far, what they let a run call now, the
    worst case (the full design) and the calls saved against it. ``ended_by`` is how the last run
    ended when the rule itself had not (``budget``, ``stopped``)."""
    lines: list[str] = []
    gate = spec.essay_gate
    if gate is not None:
        if selection.gate is None:
            lines.append(f"essay gate ({gate.describe()}): waiting for the screen scores")
        else:
            kept = sum(d.passed for d in selection.gate)
            lines.append(f"essay gate ({gate.describe()}): {kept} of {len(selection.gate)} drafts kept; "
                         f"{selection.count('gated', 'essay', membership)} essays and "
                         f"{selection.count('gated', 'evaluation', membership)} evaluations gated (never called)")
            failed = [d for d in selection.gate if not d.passed]
            lines += [f"  draft {d.draft_gen_id} {d.reason}" for d in failed[:_GATED_SHOWN]]
            if len(failed) > _GATED_SHOWN:
                lines.append(f"  ... and {len(failed) - _GATED_SHOWN} more gated drafts (all in rounds.json)")
    if spec.adaptive is not None:
        rule = spec.adaptive
        rule_text = (f"stop when every essay's P(top {rule.top}) is >= {rule.confidence} or <= "
                     f"{1 - rule.confidence:.2g}; first {rule.first} per essay, then {rule.batch} per round")
        if selection.adaptive is None:
            lines.append(f"adaptive evaluation ({rule_text}): starts once the essay gate has decided")
        else:
            progress = selection.adaptive
            line = f"{progress.describe()} [{rule_text}]"
            if progress.ended is None and ended_by:
                line += f"; last run ended by {ended_by} (a re-run continues)"
            lines.append(line)
    now = _calls(membership, selection)
    full = _calls(membership, None)
    lines.append(f"members with a model call allowed now (done or not): {_stages(now)}; "
                 f"worst case (full design): {_stages(full)}")
    withheld = {stage: full[stage] - now[stage] for stage in STAGES}
    if any(withheld.values()):
        verb = "saved against the full design" if selection.settled else "withheld so far (later rounds may add some)"
        lines.append(f"calls {verb}: {_stages(withheld)}")
    return lines
