"""Cost estimate of a cohort before anything runs: model calls per stage and model, priced
from ``llm_models.csv`` (no writes, no model calls).

Generations whose raw output is already on disk are counted as done: a re-run reuses them, so
only the remaining calls are priced. Token counts per call are assumptions (per-stage
defaults, or the caller's); the estimate says which models have no price.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog_types import ModelInfo
from ..data_layer import GensDataLayer
from ..types import STAGES, Stage
from .build import compile_cohort
from .tournament import TournamentSpec, TournamentState

# Typical (prompt, completion) tokens per call; override with estimate_cohort's arguments.
DEFAULT_TOKENS: dict[Stage, tuple[int, int]] = {
    "draft": (700, 900),
    "essay": (1100, 1600),
    "evaluation": (1900, 700),
    "comparison": (3200, 500),
}


@dataclass(frozen=True)
class ModelEstimate:
    """Calls of one model in one stage."""

    stage: Stage
    model_id: str
    calls: int
    remaining: int
    """Calls not yet made (no usable raw output on disk)."""
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    """Cost of the remaining calls; ``None`` when the model has no price."""


@dataclass(frozen=True)
class CohortEstimate:
    cohort_id: str
    generations: dict[Stage, int]
    copies: dict[Stage, int]
    lines: list[ModelEstimate] = field(default_factory=list)
    """Every member's calls (the worst case when a gate or adaptive rounds hold some back)."""
    round_lines: list[ModelEstimate] | None = None
    """A gated or adaptive cohort: the calls its current round (the first, before anything ran)
    may make; ``None`` otherwise."""
    notes: tuple[str, ...] = ()

    @property
    def total_cost(self) -> float:
        return round(sum(line.cost_usd or 0.0 for line in self.lines), 6)

    @property
    def unpriced(self) -> list[str]:
        return sorted({line.model_id for line in self.lines if line.cost_usd is None and line.remaining})

    def render(self) -> str:
        """A plain-text table for the terminal."""
        out = [f"cohort {self.cohort_id}: " + ", ".join(
            f"{self.generations[s]} {s}s" + (f" ({self.copies[s]} copies)" if self.copies[s] else "") for s in STAGES)]
        out.append(f"{'stage':<11} {'model':<28} {'calls':>7} {'to run':>7} {'tokens in/out per call':>24} {'cost $':>10}")
        for line in self.lines:
            cost = "n/a" if line.cost_usd is None else f"{line.cost_usd:.4f}"
            out.append(f"{line.stage:<11} {line.model_id:<28} {line.calls:>7} {line.remaining:>7} "
                       f"{f'{line.prompt_tokens}/{line.completion_tokens}':>24} {cost:>10}")
        out.append(f"estimated cost of the calls to run: ${self.total_cost:.4f}")
        if self.unpriced:
            out.append("no price in llm_models.csv for: " + ", ".join(self.unpriced))
        if self.round_lines is not None:
            calls = sum(line.remaining for line in self.round_lines)
            cost = round(sum(line.cost_usd or 0.0 for line in self.round_lines), 6)
            out.append(f"this round (the first, before anything ran): {calls} calls to run, estimated ${cost:.4f}; "
                       f"the table above is the worst case (the full design)")
        out += self.notes
        return "\n".join(out)


def estimate_cohort(
    data_root: str | os.PathLike[str] | Path,
    cohort_id: str,
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> CohortEstimate:
    """Estimate calls and cost of a cohort from its spec (validated, nothing written)."""
    compiled = compile_cohort(data_root, cohort_id)
    layer = GensDataLayer.from_root(data_root)
    models = compiled.catalogs.models
    from ..llm.routes import plan_routes

    # Synthetic outputs of real models are calls still to make (the raw phase's reuse rule).
    routes = plan_routes(models)
    served_by = lambda model_id: routes[model_id].served_by if model_id in routes else None  # noqa: E731
    calls: dict[tuple[Stage, str], list[int]] = defaultdict(lambda: [0, 0])
    generations = {s: 0 for s in STAGES}
    copies = {s: 0 for s in STAGES}
    for row in compiled.membership.all_rows():
        if row.stage == "comparison":
            continue  # counted below: the whole tournament, not only its decided rounds
        generations[row.stage] += 1
        if row.mode != "llm" or not row.llm_model_id:
            copies[row.stage] += 1
            continue
        tally = calls[(row.stage, row.llm_model_id)]
        tally[0] += 1
        if not layer.raw_exists(row.stage, row.gen_id, served_by=served_by):
            tally[1] += 1
    notes_head: list[str] = []
    if compiled.spec.tournament is not None and compiled.tournament is not None:
        generations["comparison"] = _tournament_calls(compiled.spec.tournament, compiled.tournament,
                                                      len(compiled.membership.essays), layer, served_by, calls)
        notes_head.append(compiled.tournament.describe())
    lines = price_calls(models, {key: (total, remaining) for key, (total, remaining) in calls.items()},
                        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    round_lines, notes = None, ()
    if compiled.spec.adaptive is not None or compiled.spec.essay_gate is not None:
        from ..adaptive import disk_outcomes, select, spending_lines

        membership = compiled.membership
        selection = select(membership, disk_outcomes(layer, membership), adaptive=compiled.spec.adaptive,
                           gate=compiled.spec.essay_gate, seed=compiled.spec.seed or 0)
        now: dict[tuple[Stage, str], list[int]] = defaultdict(lambda: [0, 0])
        for row in membership.all_rows():
            if row.mode == "llm" and row.llm_model_id and selection.allows(row.gen_id):
                tally = now[(row.stage, row.llm_model_id)]
                tally[0] += 1
                tally[1] += not layer.raw_exists(row.stage, row.gen_id, served_by=served_by)
        round_lines = price_calls(models, {key: (total, left) for key, (total, left) in now.items()},
                                  prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        notes = tuple(spending_lines(compiled.spec, selection, membership))
    notes = (*notes_head, *notes)
    return CohortEstimate(cohort_id=cohort_id, generations=generations, copies=copies, lines=lines,
                          round_lines=round_lines, notes=notes)


def _tournament_calls(spec: TournamentSpec, state: TournamentState, essays: int, layer: GensDataLayer,
                      served_by: Callable[[str], str | None], calls: dict[tuple[Stage, str], list[int]]) -> int:
    """Add every judge call of the tournament to ``calls`` (rounds x floor(pool / 2) pairs x
    orders x templates x replicates per judge; the comparisons of decided rounds whose raw output
    is on disk are done) and return how many comparisons the tournament makes."""
    pool = len(state.pool) if state.pool else spec.pool_size(essays)
    total = spec.rounds * (pool // 2) * spec.calls_per_pair()
    per_judge = total // len(spec.judges)
    for judge in spec.judges:
        made = sum(1 for row in state.comparisons
                   if row.llm_model_id == judge and layer.raw_exists("comparison", row.gen_id, served_by=served_by))
        tally = calls[("comparison", judge)]
        tally[0] += per_judge
        tally[1] += per_judge - made
    return total


def price_calls(
    models: Mapping[str, ModelInfo],
    calls: Mapping[tuple[Stage, str], tuple[int, int]],
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> list[ModelEstimate]:
    """Price ``(stage, model_id) -> (calls, remaining calls)`` from the catalog's per-token
    prices (the planner's calls for ``daydream run --dry-run``, the spec's for ``estimate``)."""
    lines = []
    for (stage, model_id), (total, remaining) in sorted(calls.items(), key=lambda kv: (STAGES.index(kv[0][0]), kv[0][1])):
        tokens_in = prompt_tokens if prompt_tokens is not None else DEFAULT_TOKENS[stage][0]
        tokens_out = completion_tokens if completion_tokens is not None else DEFAULT_TOKENS[stage][1]
        info = models.get(model_id)
        cost = None
        if info is not None and info.input_price_per_mtok is not None and info.output_price_per_mtok is not None:
            cost = round(remaining * (tokens_in * info.input_price_per_mtok + tokens_out * info.output_price_per_mtok) / 1e6, 6)
        lines.append(ModelEstimate(stage, model_id, total, remaining, tokens_in, tokens_out, cost))
    return lines
