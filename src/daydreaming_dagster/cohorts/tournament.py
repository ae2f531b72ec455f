"""A cohort's pairwise tournament (spec section ``tournament``; docs/cohort_spec.md).

The tournament is outside the design: it adds ``comparison`` generations round by round. Each
round's pairings are a pure function of the spec, its seed and the verdicts of the rounds
before it (:func:`~daydreaming_dagster.tournament.swiss_pairings`), so a re-run decides the same
pairings and reuses every comparison already made.

A round is decided only from complete information:

- round 1 waits until no essay of the pool is pending (essays that failed are left out; with
  ``pool: {top: N}`` it also waits for the cohort's evaluations, and for adaptive evaluation to
  end when the spec has it);
- round ``r + 1`` waits until no comparison of rounds ``<= r`` is pending (a comparison that
  failed gives no verdict).

A generation fixed later (``retry-failed``) changes what the next decision sees; comparisons
made before stay on disk and are reused wherever a pairing recurs. No Dagster here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..catalogs import Catalogs
from ..data_layer import GensDataLayer, Paths
from ..ids import comparison_gen_id
from ..tournament import Verdict, swiss_pairings
from .membership import Membership, MembershipRow

__all__ = [
    "TournamentSpec",
    "TournamentState",
    "decide_tournament",
    "parse_tournament",
    "read_verdict",
    "tournament_problems",
    "tournament_state",
]

ErrorFactory = Callable[[str, str], Exception]
Outcome = float | Literal["pending", "failed"]
VERDICTS = ("A", "B", "tie")


@dataclass(frozen=True)
class TournamentSpec:
    """``tournament``: Swiss-system rounds of pairwise comparisons between the cohort's essays."""

    templates: tuple[str, ...]
    """Comparison templates (``comparison_templates.csv``); every pair is judged with each."""
    judges: tuple[str, ...]
    """Judge models (``llm_models.csv``); every pair is judged by each."""
    rounds: int
    """Swiss-system rounds."""
    both_orders: bool = True
    """Judge every pair as (A, B) and as (B, A), so the first-shown advantage cancels and can
    be measured."""
    pool_top: int | None = None
    """``pool: {top: N}``: only the N best essays by the cohort's scores; ``None``: every essay."""
    replicates: int = 1
    """Judgements per pair, order, template and judge."""
    seed: int = 0
    """Seeds round 1's shuffle and every tie-break of the pairing."""

    @property
    def orders(self) -> int:
        return 2 if self.both_orders else 1

    def calls_per_pair(self) -> int:
        """Comparisons one pairing adds: orders x templates x judges x replicates."""
        return self.orders * len(self.templates) * len(self.judges) * self.replicates

    def pool_size(self, essays: int) -> int:
        return essays if self.pool_top is None else min(self.pool_top, essays)

    def total_calls(self, essays: int) -> int:
        """Every judge call of the tournament for a cohort of ``essays`` essays:
        rounds x floor(pool / 2) pairs x orders x templates x judges x replicates."""
        return self.rounds * (self.pool_size(essays) // 2) * self.calls_per_pair()

    def describe(self) -> str:
        pool = "every essay" if self.pool_top is None else f"the top {self.pool_top} essays by score"
        orders = "both orders" if self.both_orders else "one order"
        return (f"{self.rounds} Swiss rounds over {pool}, {orders}, "
                f"{len(self.templates)} template(s) x {len(self.judges)} judge(s)")


def _names(error: ErrorFactory, rule: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise error(rule, f"expected a non-empty list of ids, got {value!r}")
    names = tuple(dict.fromkeys(v.strip() for v in items))
    return names


def _positive(error: ErrorFactory, rule: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(rule, f"expected an integer >= {minimum}, got {value!r}")
    return value


def parse_tournament(error: ErrorFactory, payload: Any, default_seed: int | None) -> TournamentSpec | None:
    """The spec's ``tournament`` section (``None`` when absent)."""
    if payload is None:
        return None
    if not isinstance(payload, Mapping):
        raise error("tournament", f"expected a mapping (template, judge_llm, rounds...), got {payload!r}")
    allowed = {"template", "judge_llm", "rounds", "both_orders", "pool", "replicates", "seed"}
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise error("tournament", f"unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(allowed))}")
    for key in ("template", "judge_llm", "rounds"):
        if key not in payload:
            raise error("tournament", f"missing '{key}' (e.g. template: [compare-overall], judge_llm: [model], rounds: 5)")
    both = payload.get("both_orders", True)
    if not isinstance(both, bool):
        raise error("tournament.both_orders", f"expected true or false, got {both!r}")
    seed = payload.get("seed", default_seed if default_seed is not None else 0)
    return TournamentSpec(
        templates=_names(error, "tournament.template", payload["template"]),
        judges=_names(error, "tournament.judge_llm", payload["judge_llm"]),
        rounds=_positive(error, "tournament.rounds", payload["rounds"]),
        both_orders=both,
        pool_top=_pool(error, payload.get("pool", "all")),
        replicates=_positive(error, "tournament.replicates", payload.get("replicates", 1)),
        seed=_positive(error, "tournament.seed", seed, 0),
    )


def _pool(error: ErrorFactory, value: Any) -> int | None:
    if value == "all":
        return None
    if isinstance(value, Mapping) and set(value) == {"top"}:
        return _positive(error, "tournament.pool.top", value["top"], 2)
    raise error("tournament.pool", f"expected 'all' or {{top: N}} (N >= 2), got {value!r}")


def tournament_problems(spec: TournamentSpec, catalogs: Catalogs, paths: Paths, has_evaluations: bool) -> list[str]:
    """Templates, template files and judges the catalogs lack (one line per kind)."""
    problems: list[str] = []
    known = catalogs.templates.get("comparison", {})
    unknown = [t for t in spec.templates if t not in known]
    if unknown:
        problems.append(f"unknown comparison template(s): {', '.join(unknown)} (not in comparison_templates.csv; "
                        f"known: {', '.join(known) or 'none'})")
    inactive = [t for t in spec.templates if t in known and not known[t].active]
    if inactive:
        problems.append(f"inactive comparison template(s): {', '.join(inactive)} (active=false in comparison_templates.csv)")
    missing = [str(paths.template_file("comparison", t)) for t in spec.templates
               if t in known and not paths.template_file("comparison", t).is_file()]
    if missing:
        problems.append(f"missing template file(s): {', '.join(missing)}")
    judges = [j for j in spec.judges if j not in catalogs.models]
    if judges:
        problems.append(f"unknown judge model(s) in tournament.judge_llm: {', '.join(judges)} (not in llm_models.csv)")
    if spec.pool_top is not None and not has_evaluations:
        problems.append("tournament.pool {top: N} ranks essays by their scores, but the cohort has no evaluations; "
                        "use pool: all or add evaluation axes")
    return problems


# -- deciding rounds from the disk ---------------------------------------------------------------
@dataclass(frozen=True)
class TournamentState:
    """What the tournament has decided from the outcomes on disk."""

    spec: TournamentSpec
    pool: tuple[str, ...] = ()
    """Essays in the tournament (empty until round 1 is decided)."""
    comparisons: tuple[MembershipRow, ...] = ()
    """Comparisons of every decided round, round by round."""
    rounds_decided: int = 0
    rounds_complete: int = 0
    """Rounds with no comparison pending."""
    waiting: str = ""
    """Why the next round is not decided yet (empty when every round is decided)."""
    verdicts: int = 0
    failed: int = 0
    """Comparisons of decided rounds that failed (they give no verdict)."""
    left_out: tuple[str, ...] = ()
    """Essays left out of the pool because they failed."""

    @property
    def done(self) -> bool:
        return self.rounds_complete >= self.spec.rounds

    def describe(self) -> str:
        """One line for plans, status and the report."""
        head = f"tournament: {self.spec.describe()}"
        if self.rounds_decided == 0:
            return f"{head}; round 1 not decided yet ({self.waiting})"
        state = (f"{self.rounds_complete} of {self.spec.rounds} rounds complete, pool of {len(self.pool)} essays, "
                 f"{self.verdicts} verdicts" + (f", {self.failed} failed comparisons" if self.failed else ""))
        tail = f"; next: {self.waiting}" if self.waiting and not self.done else ""
        return f"{head}; {state}{tail}"


def read_verdict(layer: GensDataLayer, gen_id: str) -> str:
    """A comparison's verdict (``A``, ``B``, ``tie``), ``failed`` or ``pending``, from disk."""
    state, _parsed = layer.stored_outcome("comparison", gen_id)
    if state != "parsed":
        return state
    text = layer.read_parsed("comparison", gen_id).strip()
    return text if text in VERDICTS else "failed"


def decide_tournament(data_root: Any, spec: TournamentSpec, membership: Membership, *,
                      gate: Any = None, adaptive: Any = None, seed: int = 0) -> TournamentState:
    """:func:`tournament_state` of a cohort from its gens store (the gate and adaptive rules,
    when the spec has them, decide which essays and evaluations count)."""
    from ..adaptive import disk_outcomes, select

    layer = GensDataLayer.from_root(data_root)
    outcome = disk_outcomes(layer, membership)
    if gate is None and adaptive is None:
        return tournament_state(spec, membership, layer, outcome)
    selection = select(membership, outcome, adaptive=adaptive, gate=gate, seed=seed)
    return tournament_state(spec, membership, layer, outcome, allowed=selection.allows, settled=selection.settled)


def tournament_state(spec: TournamentSpec, membership: Membership, layer: GensDataLayer,
                     outcome: Callable[[str], Outcome], *, allowed: Callable[[str], bool] | None = None,
                     settled: bool = True) -> TournamentState:
    """Replay the tournament from the disk: the pool, then each round whose predecessors are
    complete. ``outcome`` gives the state of the cohort's essays and evaluations; ``allowed``
    (a gate, adaptive evaluation) says which members the cohort may run and ``settled`` whether
    those decisions are final (the pool waits for them)."""
    if not settled:
        return TournamentState(spec, waiting="waiting for the gate and adaptive evaluation to settle")
    pool, left_out, waiting = _pool_of(spec, membership, outcome, allowed)
    if pool is None:
        return TournamentState(spec, waiting=waiting)
    combos = {row.gen_id: row.combo_id for row in membership.essays}
    rows: list[MembershipRow] = []
    verdicts: list[Verdict] = []
    failed = 0
    complete = 0
    waiting = ""
    for number in range(1, spec.rounds + 1):
        pairs = swiss_pairings(pool, round_number=number, seed=spec.seed, verdicts=verdicts)
        round_rows = [row for a, b in pairs for row in _pair_rows(spec, a, b, number, combos)]
        rows += round_rows
        pending = 0
        for row in round_rows:
            found = read_verdict(layer, row.gen_id)
            if found == "pending":
                pending += 1
            elif found == "failed":
                failed += 1
            else:
                verdicts.append(Verdict(row.parent_gen_ids[0], row.parent_gen_ids[1], str(found)))
        if pending:
            waiting = f"round {number + 1} waits for {pending} comparison(s) of round {number}"
            return TournamentState(spec, tuple(pool), tuple(rows), number, complete, waiting,
                                   len(verdicts), failed, left_out)
        complete = number
    return TournamentState(spec, tuple(pool), tuple(rows), spec.rounds, complete, waiting, len(verdicts), failed,
                           left_out)


def _pair_rows(spec: TournamentSpec, first: str, second: str, number: int,
               combos: Mapping[str, str]) -> list[MembershipRow]:
    orders = [(first, second), (second, first)] if spec.both_orders else [(first, second)]
    return [
        MembershipRow(
            stage="comparison",
            gen_id=comparison_gen_id(a, b, template, judge, replicate),
            parent_gen_id=a,
            template_id=template,
            llm_model_id=judge,
            combo_id=combos.get(a, ""),
            replicate=replicate,
            mode="llm",
            parent_gen_ids=(a, b),
            round=number,
        )
        for a, b in orders
        for template in spec.templates
        for judge in spec.judges
        for replicate in range(1, spec.replicates + 1)
    ]


def _pool_of(spec: TournamentSpec, membership: Membership, outcome: Callable[[str], Outcome],
             allowed: Callable[[str], bool] | None) -> tuple[list[str] | None, tuple[str, ...], str]:
    """(pool, essays left out, why undecided): the pool once nothing it depends on is pending."""
    essays = [row.gen_id for row in membership.essays if allowed is None or allowed(row.gen_id)]
    states = {gen_id: outcome(gen_id) for gen_id in essays}
    pending = [g for g, s in states.items() if s == "pending"]
    if pending:
        return None, (), f"waiting for {len(pending)} essay(s) to be parsed"
    left_out = tuple(g for g, s in states.items() if s == "failed")
    ready = [g for g in essays if states[g] != "failed"]
    if spec.pool_top is not None:
        evaluations = [row for row in membership.evaluations if allowed is None or allowed(row.gen_id)]
        scores = {row.gen_id: outcome(row.gen_id) for row in evaluations}
        waiting = [g for g, s in scores.items() if s == "pending"]
        if waiting:
            return None, left_out, f"waiting for {len(waiting)} evaluation(s) (the pool is the top essays by score)"
        ready = _top_by_score(ready, evaluations, scores, spec.pool_top)
    if len(ready) < 2:
        return None, left_out, f"a tournament needs at least 2 parsed essays, the pool has {len(ready)}"
    return ready, left_out, ""


def _top_by_score(essays: Sequence[str], evaluations: Sequence[MembershipRow], scores: Mapping[str, Outcome],
                  top: int) -> list[str]:
    """The ``top`` essays by the evaluator-adjusted essay model (the analysis's own), ties and
    unscored essays ordered by id; returned in ``essays`` order."""
    import polars as pl

    from ..analysis import fit_essay_model, prepare_scores

    candidates = set(essays)
    rows = [(row.parent_gen_id, f"{row.template_id}/{row.llm_model_id}", float(score))
            for row in evaluations if isinstance(score := scores[row.gen_id], float) and row.parent_gen_id in candidates]
    means: dict[str, float] = {}
    if rows:
        table = pl.DataFrame(rows, schema={"essay_gen_id": pl.String, "evaluator": pl.String, "score": pl.Float64},
                             orient="row")
        fit = fit_essay_model(prepare_scores(table, "tournament pool"))
        means = {essay: float(mean) for essay, mean in zip(fit.essay_ids, fit.means, strict=True)
                 if not math.isnan(float(mean))}
    ranked = sorted(essays, key=lambda e: (-means.get(e, -math.inf), e))
    chosen = set(ranked[:top])
    return [e for e in essays if e in chosen]
