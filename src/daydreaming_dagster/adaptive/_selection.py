"""Which members of a cohort a run may call now: the replay of gates and adaptive rounds.

:func:`select` is a pure function of the spec's spending sections, the membership, the seed and
the outcomes on disk (a score, ``failed`` or ``pending`` per evaluation). It replays the whole
history every time:

1. the essay gate (if any) decides once every screen evaluation has an outcome; until then
   the gated essay templates are *held*; after, the essays of drafts that did not pass are
   *gated* (and so are their evaluations);
2. adaptive evaluation (if any) starts once the gate (if any) has decided: round 1 is the
   first-round rotation; round ``k + 1`` is chosen from the essay model fitted on the scores of
   rounds ``1..k`` once every evaluation of round ``k`` has an outcome. Evaluations not chosen
   are *held* while rounds continue and *unselected* once the stopping rule ended them.

Because each step depends only on outcomes of steps before it, a re-run after a kill (or on
another machine) arrives at the same rounds and finds their evaluations on disk: nothing is
lost, nothing paid twice. The round log (:mod:`._log`) records the replay for people; it is
never an input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..cohorts.membership import Membership, MembershipRow
from ..cohorts.spending import AdaptiveEvaluation, EssayGate
from ..results.scores import evaluator_label
from ..types import Stage, parent_stage
from ._allocation import Candidate, Pick, TopSetModel, first_round, next_round
from ._gates import GateDecision, decide_gate, screen_evaluations

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from ..data_layer import GensDataLayer

__all__ = ["AdaptiveProgress", "Held", "RoundRecord", "Selection", "analysis_fit", "disk_outcomes", "select"]

Outcome = float | Literal["failed", "pending"]
FitModel = Callable[["pl.DataFrame"], TopSetModel]


@dataclass(frozen=True)
class Held:
    """Why a member is not called now."""

    state: Literal["gated", "held", "unselected"]
    """``gated``: a gate's screen decided against it (final); ``held``: waits for a decision
    (a gate's screen, an adaptive round); ``unselected``: adaptive evaluation ended without it."""
    reason: str


@dataclass(frozen=True)
class RoundRecord:
    """One adaptive round: what it added and the stopping rule before it was chosen."""

    number: int
    picks: tuple[Pick, ...]
    stopping_value: float | None
    """The stopping rule's value when the round was chosen (``None`` for round 1)."""
    undecided: int | None
    complete: bool
    """Every evaluation of the round has an outcome."""


@dataclass(frozen=True)
class AdaptiveProgress:
    """Where adaptive evaluation stands."""

    rule: AdaptiveEvaluation
    rounds: tuple[RoundRecord, ...]
    ended: str | None
    """``goal met``, ``design exhausted`` or ``None`` while rounds continue (a run stopped by
    its budget says so itself: the rule cannot see money not spent)."""
    stopping_value: float | None
    """Latest value of ``min max(P(top), 1 - P(top))`` over essays."""
    design: int
    """Evaluations the design allows (excluding gated ones)."""
    screened: int = 0
    """Evaluations made before round 1 (a gate's screen), counted as chosen."""

    @property
    def chosen(self) -> int:
        return self.screened + sum(len(r.picks) for r in self.rounds)

    @property
    def saved(self) -> int:
        """Evaluations of the design not chosen (so far)."""
        return self.design - self.chosen

    def describe(self) -> str:
        """One line for status and the report."""
        value = "n/a" if self.stopping_value is None else f"{self.stopping_value:.3f}"
        state = f"ended: {self.ended}" if self.ended else "in progress"
        return (f"adaptive evaluation: {len(self.rounds)} round(s), {self.chosen} of {self.design} evaluations "
                f"chosen ({self.saved} saved); stopping rule min max(P(top {self.rule.top}), 1 - P) = {value} "
                f"(goal {self.rule.confidence}); {state}")


@dataclass(frozen=True)
class Selection:
    """Members a run must not call now (every other member may run)."""

    withheld: dict[str, Held] = field(default_factory=dict)
    gate: tuple[GateDecision, ...] | None = None
    """The gate's decisions, once made."""
    adaptive: AdaptiveProgress | None = None
    round_of: dict[str, int] = field(default_factory=dict)
    """Evaluation id -> the adaptive round that chose it (0: a gate's screen)."""

    def allows(self, gen_id: str) -> bool:
        return gen_id not in self.withheld

    @property
    def settled(self) -> bool:
        """No member waits for a decision (later runs can add nothing)."""
        return not any(h.state == "held" for h in self.withheld.values())

    def restrict(self, membership: Membership) -> Membership:
        """The membership a run may call now."""
        keep = lambda rows: tuple(r for r in rows if self.allows(r.gen_id))  # noqa: E731
        return Membership(keep(membership.drafts), keep(membership.essays), keep(membership.evaluations),
                          membership.design_rows, keep(membership.comparisons))

    def count(self, state: str, stage: Stage, membership: Membership) -> int:
        return sum(1 for r in membership.rows(stage) if (h := self.withheld.get(r.gen_id)) and h.state == state)


def disk_outcomes(layer: GensDataLayer, membership: Membership) -> Callable[[str], Outcome]:
    """Outcome of a generation from the gens store: the score (evaluations) or ``0.0``
    (other stages) when parsed, ``failed`` when it or an ancestor failed, else ``pending``."""
    rows = {r.gen_id: r for r in membership.all_rows()}
    memo: dict[str, Outcome] = {}

    def own(row: MembershipRow) -> Outcome:
        state, parsed = layer.stored_outcome(row.stage, row.gen_id)
        if state != "parsed":
            return state  # type: ignore[return-value]
        if row.stage != "evaluation":
            return 0.0
        score = (parsed or {}).get("score")
        return float(score) if isinstance(score, int | float) else "failed"

    def outcome(gen_id: str) -> Outcome:
        if gen_id not in memo:
            row = rows[gen_id]
            result = own(row)
            if result == "pending" and row.parent_gen_id and parent_stage(row.stage) and row.parent_gen_id in rows:
                # A generation whose parent failed will never run (the planner blocks it).
                if outcome(row.parent_gen_id) == "failed":
                    result = "failed"
            memo[gen_id] = result
        return memo[gen_id]

    return outcome


def analysis_fit(table: pl.DataFrame) -> TopSetModel:
    """The analysis layer's evaluator-adjusted essay model (the one essay model) fitted on
    ``table`` (``essay_gen_id, evaluator, score``), as allocation sees it."""
    from ..analysis import fit_essay_model, prepare_scores

    return _FittedTopSet(fit_essay_model(prepare_scores(table, "adaptive round scores")))


class _FittedTopSet:
    """:class:`~daydreaming_dagster.analysis.EssayModelFit` behind :class:`TopSetModel`."""

    def __init__(self, fit: Any) -> None:
        self.fit = fit
        self.essay_ids: tuple[str, ...] = fit.essay_ids
        self.n_scores = fit.n_scores

    def top_k_probabilities(self, k: int, n_draws: int = 2000, seed: int = 0) -> np.ndarray:
        import numpy as np

        found = self.fit.top_k_probabilities((k,), n_draws, np.random.default_rng(seed))
        # No residual degrees of freedom yet: nothing is decided.
        return found[k] if found is not None else np.full(len(self.essay_ids), np.nan)


def select(membership: Membership, outcome: Callable[[str], Outcome], *, adaptive: AdaptiveEvaluation | None,
           gate: EssayGate | None, seed: int = 0, fit: FitModel | None = None) -> Selection:
    """Replay the gate and the adaptive rounds (module docstring); ``fit`` fits the essay model
    on a table ``essay_gen_id, evaluator, score`` (default: the analysis layer's)."""
    withheld: dict[str, Held] = {}
    decisions: list[GateDecision] | None = None
    gated_essays: set[str] = set()
    screen_ids: set[str] = set()
    if gate is not None:
        screen_ids = {r.gen_id for rows in screen_evaluations(gate, membership).values() for r in rows}
        decisions = decide_gate(gate, membership, outcome, seed)
        passed = {d.draft_gen_id: d for d in decisions} if decisions is not None else {}
        for essay in membership.rows("essay"):
            if essay.template_id not in gate.templates:
                continue
            if decisions is None:
                withheld[essay.gen_id] = Held("held", "waits for the essay gate's screen scores")
            elif not passed[essay.parent_gen_id or ""].passed:
                gated_essays.add(essay.gen_id)
                withheld[essay.gen_id] = Held("gated", passed[essay.parent_gen_id or ""].reason)
    for evaluation in membership.rows("evaluation"):
        parent = evaluation.parent_gen_id or ""
        if parent in gated_essays:
            withheld[evaluation.gen_id] = Held("gated", "its essay was gated")
        elif parent in withheld:
            withheld[evaluation.gen_id] = Held("held", "its essay waits for the essay gate")

    progress = None
    round_of: dict[str, int] = {r: 0 for r in screen_ids}
    if adaptive is not None:
        candidates = [row for row in membership.rows("evaluation") if row.gen_id not in withheld]
        if gate is not None and decisions is None:
            for row in candidates:
                if row.gen_id not in screen_ids:
                    withheld[row.gen_id] = Held("held", "adaptive evaluation starts once the essay gate has decided")
        else:
            progress, round_of = _replay(adaptive, candidates, outcome, screen_ids, fit or analysis_fit)
            chosen = set(round_of)
            state: Literal["held", "unselected"] = "unselected" if progress.ended else "held"
            why = (f"not chosen: adaptive evaluation ended ({progress.ended})" if progress.ended
                   else "not chosen by an adaptive round so far")
            for row in candidates:
                if row.gen_id not in chosen:
                    withheld[row.gen_id] = Held(state, why)
    return Selection(withheld, tuple(decisions) if decisions is not None else None, progress, round_of)


def _replay(rule: AdaptiveEvaluation, rows: list[MembershipRow], outcome: Callable[[str], Outcome],
            screen_ids: set[str], fit: FitModel) -> tuple[AdaptiveProgress, dict[str, int]]:
    import polars as pl

    candidates = [Candidate(r.gen_id, r.parent_gen_id or "", evaluator_label(r.template_id, r.llm_model_id) or "",
                            r.replicate) for r in rows]
    by_id = {c.gen_id: c for c in candidates}
    round_of = {gen_id: 0 for gen_id in screen_ids if gen_id in by_id}
    already: dict[str, int] = {}
    for gen_id in round_of:
        essay = by_id[gen_id].essay_gen_id
        already[essay] = already.get(essay, 0) + 1
    picks = first_round(candidates, rule.first, rule.seed, already)
    rounds: list[RoundRecord] = []
    value: float | None = None
    undecided: int | None = None
    ended: str | None = None
    while True:
        number = len(rounds) + 1
        for pick in picks:
            round_of[pick.gen_id] = number
        complete = all(outcome(gen_id) != "pending" for gen_id in round_of)
        rounds.append(RoundRecord(number, tuple(picks), value, undecided, complete))
        if not complete:
            break
        scored = [(by_id[g].essay_gen_id, by_id[g].evaluator, result) for g in round_of
                  if isinstance(result := outcome(g), float)]
        table = pl.DataFrame(scored, schema={"essay_gen_id": pl.String, "evaluator": pl.String, "score": pl.Float64},
                             orient="row")
        choice = next_round(candidates, list(round_of), fit(table), top=rule.top, confidence=rule.confidence,
                            batch=rule.batch, seed=rule.seed)
        value, undecided = choice.stopping_value, choice.undecided
        if choice.ended:
            ended = choice.ended
            break
        picks = list(choice.picks)
    screened = sum(1 for number in round_of.values() if number == 0)
    return AdaptiveProgress(rule, tuple(rounds), ended, value, len(candidates), screened), round_of


def selection_summary(selection: Selection, membership: Membership) -> dict[str, Any]:
    """Counts for JSON output: withheld members per stage and state, and the adaptive rounds."""
    counts: dict[str, dict[str, int]] = {}
    for stage in ("essay", "evaluation"):
        counts[stage] = {state: selection.count(state, stage, membership) for state in ("gated", "held", "unselected")}
    summary: dict[str, Any] = {"withheld": counts}
    if selection.adaptive is not None:
        a = selection.adaptive
        summary["adaptive"] = {"rounds": len(a.rounds), "chosen": a.chosen, "design": a.design, "saved": a.saved,
                               "stopping_value": a.stopping_value, "ended": a.ended}
    if selection.gate is not None:
        summary["gate"] = {"kept": sum(d.passed for d in selection.gate), "drafts": len(selection.gate)}
    return summary
