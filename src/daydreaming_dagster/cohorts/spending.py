"""The spec's spending sections: ``adaptive`` (evaluations added round by round) and ``gates``
(expensive essay templates only for drafts that pass a cheap screen). See docs/adaptive.md.

Neither section is part of the design: membership (and every generation id) stays the full
factorial; these sections only decide which members a run calls and when::

    adaptive:
      evaluation:
        goal: {top: 5, confidence: 0.9}   # stop when every essay's top-5 membership is this certain
        first: 2                          # evaluations per essay in the first round
        batch: 64                         # evaluations added per later round
        # seed: 0                         # tie-breaking (default: output.seed, else 0)
    gates:
      essay:
        templates: [essay-expand]
        screen: {essay_template: essay-copy, evaluation: [eval-overall], evaluation_llm: [gpt-4o-mini]}
        keep: {top: 25%, per: draft_template}

Parsing raises :class:`~daydreaming_dagster.errors.SpecError` naming the field;
:func:`spending_problems` checks the sections against the compiled membership (levels the design
does not have). No Dagster here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError

if TYPE_CHECKING:
    from .membership import Membership

__all__ = ["GATE_GROUP_AXES", "AdaptiveEvaluation", "EssayGate", "parse_adaptive", "parse_gates", "spending_problems"]

ErrorFactory = Callable[[str, str], SpecError]

GATE_GROUP_AXES: tuple[str, ...] = ("draft_template", "draft_llm", "combo_id")
"""Axes ``gates.essay.keep.per`` may group drafts by."""


@dataclass(frozen=True)
class AdaptiveEvaluation:
    """``adaptive.evaluation``: evaluations are added round by round where they change the answer."""

    top: int
    """Size of the top set the goal is about."""
    confidence: float
    """The goal: every essay's probability of top-set membership is at least this, or at most
    ``1 - confidence`` (its membership is decided either way)."""
    first: int
    """Evaluations per essay in the first round."""
    batch: int
    """Evaluations added per later round."""
    seed: int = 0
    """Seeds the first round's evaluator rotation, tie-breaks and the model's draws."""


@dataclass(frozen=True)
class EssayGate:
    """``gates.essay``: essays of ``templates`` are written only for drafts that pass a screen."""

    templates: tuple[str, ...]
    """Gated essay templates (the expensive ones)."""
    screen_essay_template: str
    """The cheap essay template whose evaluations screen each draft (e.g. a copy of the draft)."""
    screen_evaluation_templates: tuple[str, ...]
    screen_evaluation_llms: tuple[str, ...]
    """Evaluation models of the screen; empty means every model of the design."""
    keep_share: float | None
    """Share of each group's drafts kept (``top: 25%``), or ``None`` with ``keep_count``."""
    keep_count: int | None
    """Number of each group's drafts kept (``top: 3``)."""
    per: tuple[str, ...]
    """Axes drafts are grouped by before ranking (empty: one group)."""

    def kept_in(self, group_size: int) -> int:
        """How many drafts of a group of ``group_size`` pass (at least one of a non-empty group)."""
        if group_size <= 0:
            return 0
        if self.keep_count is not None:
            return min(group_size, self.keep_count)
        assert self.keep_share is not None
        return max(1, min(group_size, math.ceil(self.keep_share * group_size - 1e-9)))

    def describe(self) -> str:
        """One line for plans, status and the report."""
        keep = f"top {self.keep_count}" if self.keep_count is not None else f"top {self.keep_share:.0%}"
        per = f" per {'+'.join(self.per)}" if self.per else ""
        llms = f" by {', '.join(self.screen_evaluation_llms)}" if self.screen_evaluation_llms else ""
        return (f"essay templates {', '.join(self.templates)} only for the {keep} drafts{per} by the mean "
                f"{', '.join(self.screen_evaluation_templates)} score{llms} of their "
                f"{self.screen_essay_template} essay")


def _check(error: ErrorFactory, rule: str, payload: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise error(rule, f"expected a mapping, got {type(payload).__name__} {payload!r}")
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        raise error(rule, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return payload


def _int(error: ErrorFactory, rule: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(rule, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _names(error: ErrorFactory, rule: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise error(rule, f"expected a non-empty list of ids, got {value!r}")
    return tuple(dict.fromkeys(v.strip() for v in value))


def parse_adaptive(error: ErrorFactory, payload: Any, default_seed: int | None) -> AdaptiveEvaluation | None:
    """``adaptive`` -> its ``evaluation`` section (``None`` when absent)."""
    if payload is None:
        return None
    section = _check(error, "adaptive", payload, {"evaluation"})
    if section.get("evaluation") is None:
        return None
    rule = "adaptive.evaluation"
    evaluation = _check(error, rule, section["evaluation"], {"goal", "first", "batch", "seed"})
    for key in ("goal", "first", "batch"):
        if key not in evaluation:
            raise error(rule, f"missing '{key}' (e.g. goal: {{top: 5, confidence: 0.9}}, first: 2, batch: 64)")
    goal = _check(error, f"{rule}.goal", evaluation["goal"], {"top", "confidence"})
    if "top" not in goal or "confidence" not in goal:
        raise error(f"{rule}.goal", "give both 'top' (size of the top set) and 'confidence' (e.g. 0.9)")
    confidence = goal["confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 < confidence < 1:
        raise error(f"{rule}.goal.confidence", f"expected a probability between 0.5 and 1 (exclusive), got {confidence!r}")
    seed = evaluation.get("seed", default_seed if default_seed is not None else 0)
    return AdaptiveEvaluation(
        top=_int(error, f"{rule}.goal.top", goal["top"], 1),
        confidence=float(confidence),
        first=_int(error, f"{rule}.first", evaluation["first"], 1),
        batch=_int(error, f"{rule}.batch", evaluation["batch"], 1),
        seed=_int(error, f"{rule}.seed", seed, 0),
    )


def _keep(error: ErrorFactory, rule: str, payload: Any) -> tuple[float | None, int | None, tuple[str, ...]]:
    keep = _check(error, rule, payload, {"top", "per"})
    top = keep.get("top")
    share: float | None = None
    count: int | None = None
    if isinstance(top, str) and top.strip().endswith("%"):
        try:
            share = float(top.strip()[:-1]) / 100
        except ValueError:
            share = None
        if share is None or not 0 < share <= 1:
            raise error(f"{rule}.top", f"expected a share such as '25%' (0-100%), got {top!r}")
    elif isinstance(top, float) and not isinstance(top, bool) and 0 < top < 1:
        share = top
    elif isinstance(top, int) and not isinstance(top, bool) and top >= 1:
        count = top
    else:
        raise error(f"{rule}.top", f"expected a share ('25%' or 0.25) or a count of drafts (3), got {top!r}")
    per_value = keep.get("per", ())
    per = () if per_value in ((), None, []) else _names(error, f"{rule}.per", per_value)
    bad = [axis for axis in per if axis not in GATE_GROUP_AXES]
    if bad:
        raise error(f"{rule}.per", f"cannot group drafts by {', '.join(bad)}; use any of {', '.join(GATE_GROUP_AXES)}")
    return share, count, per


def parse_gates(error: ErrorFactory, payload: Any) -> EssayGate | None:
    """``gates`` -> its ``essay`` gate (``None`` when absent)."""
    if payload is None:
        return None
    section = _check(error, "gates", payload, {"essay"})
    if section.get("essay") is None:
        return None
    rule = "gates.essay"
    gate = _check(error, rule, section["essay"], {"templates", "screen", "keep"})
    for key in ("templates", "screen", "keep"):
        if key not in gate:
            raise error(rule, f"missing '{key}' (see docs/adaptive.md for an example)")
    templates = _names(error, f"{rule}.templates", gate["templates"])
    screen = _check(error, f"{rule}.screen", gate["screen"], {"essay_template", "evaluation", "evaluation_llm"})
    essay_template = screen.get("essay_template")
    if not isinstance(essay_template, str) or not essay_template.strip():
        raise error(f"{rule}.screen.essay_template", f"expected the id of the screening essay template, got {essay_template!r}")
    if essay_template.strip() in templates:
        raise error(f"{rule}.screen.essay_template",
                    f"{essay_template!r} is also gated; the screen must be an essay template every draft gets")
    if "evaluation" not in screen:
        raise error(f"{rule}.screen", "missing 'evaluation' (the evaluation templates whose scores screen the drafts)")
    evaluations = _names(error, f"{rule}.screen.evaluation", screen["evaluation"])
    llms = () if screen.get("evaluation_llm") is None else _names(error, f"{rule}.screen.evaluation_llm", screen["evaluation_llm"])
    share, count, per = _keep(error, f"{rule}.keep", gate["keep"])
    return EssayGate(templates, essay_template.strip(), evaluations, llms, share, count, per)


def spending_problems(adaptive: AdaptiveEvaluation | None, gate: EssayGate | None,
                      membership: Membership) -> list[str]:
    """Problems of the spending sections against the compiled membership (levels it lacks)."""
    problems: list[str] = []
    essay_templates = {r.template_id for r in membership.rows("essay")}
    evaluation_rows = membership.rows("evaluation")
    if gate is not None:
        def missing(rule: str, wanted: Sequence[str], have: set[str], what: str) -> None:
            absent = [w for w in wanted if w not in have]
            if absent:
                problems.append(f"{rule}: {', '.join(absent)}: no such {what} in the design "
                                f"(it has: {', '.join(sorted(have)) or 'none'})")

        missing("gates.essay.templates", gate.templates, essay_templates, "essay template")
        missing("gates.essay.screen.essay_template", [gate.screen_essay_template], essay_templates, "essay template")
        screened = {r.gen_id for r in membership.rows("essay") if r.template_id == gate.screen_essay_template}
        screen_rows = [r for r in evaluation_rows if r.parent_gen_id in screened]
        missing("gates.essay.screen.evaluation", gate.screen_evaluation_templates,
                {r.template_id for r in screen_rows}, "evaluation template of the screen essays")
        missing("gates.essay.screen.evaluation_llm", gate.screen_evaluation_llms,
                {r.llm_model_id or "" for r in screen_rows}, "evaluation model of the screen essays")
    if adaptive is not None:
        essays = len(membership.rows("essay"))
        if not evaluation_rows:
            problems.append("adaptive.evaluation: the design has no evaluations to allocate")
        elif adaptive.top >= essays:
            problems.append(f"adaptive.evaluation.goal.top: {adaptive.top} is not smaller than the number of "
                            f"essays ({essays}); every essay would be in the top set")
    return problems
