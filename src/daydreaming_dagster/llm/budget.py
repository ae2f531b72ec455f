"""Cost ledger and budget: what the model calls of a run cost, per stage and in total.

``max_cost`` is a stop rule for *starting* calls: once the recorded cost reaches it, every new
call raises :class:`~daydreaming_dagster.errors.BudgetExceeded` before any request is sent,
while calls already in flight finish and are returned (and so persisted) normally. The total
can therefore end slightly above ``max_cost`` by the cost of the calls that were in flight.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..errors import BudgetExceeded
from .base import GenerationRequest, GenerationResult


@dataclass(frozen=True)
class StageCost:
    """Totals of one stage's calls."""

    calls: int = 0
    """Calls recorded (successful results)."""
    cost_usd: float = 0.0
    """Sum of the known costs."""
    calls_without_cost: int = 0
    """Calls whose cost nobody reported nor could compute (no price in the catalog)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "calls": self.calls,
            "cost_usd": self.cost_usd,
            "calls_without_cost": self.calls_without_cost,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass(frozen=True)
class CostSummary:
    """A snapshot of a :class:`CostLedger`."""

    total: StageCost
    by_stage: dict[str, StageCost] = field(default_factory=dict)
    max_cost: float | None = None
    refused_calls: int = 0
    """Calls refused because the budget was spent."""

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total.as_dict(),
            "by_stage": {stage: cost.as_dict() for stage, cost in self.by_stage.items()},
            "max_cost": self.max_cost,
            "refused_calls": self.refused_calls,
        }


def _add(cost: StageCost, result: GenerationResult) -> StageCost:
    usage = result.usage
    known = usage.cost_usd is not None
    return StageCost(
        calls=cost.calls + 1,
        cost_usd=cost.cost_usd + (usage.cost_usd or 0.0),
        calls_without_cost=cost.calls_without_cost + (0 if known else 1),
        prompt_tokens=cost.prompt_tokens + (usage.prompt_tokens or 0),
        completion_tokens=cost.completion_tokens + (usage.completion_tokens or 0),
    )


class CostLedger:
    """Sums the cost of results per stage and in total; enforces ``max_cost`` (thread-safe).

    Args:
        max_cost: budget in USD (``None``: unlimited). Must be >= 0.
    """

    def __init__(self, max_cost: float | None = None) -> None:
        if max_cost is not None and max_cost < 0:
            raise ValueError(f"max_cost must be >= 0 or None, got {max_cost}")
        self.max_cost = max_cost
        self._lock = threading.Lock()
        self._total = StageCost()
        self._by_stage: dict[str, StageCost] = {}
        self._refused = 0

    @property
    def spent(self) -> float:
        """Total known cost recorded so far, in USD."""
        with self._lock:
            return self._total.cost_usd

    def exhausted(self) -> bool:
        """True when the budget is spent (no new call may start)."""
        return self.max_cost is not None and self.spent >= self.max_cost

    def ensure_can_start(self, request: GenerationRequest) -> None:
        """Raise :class:`BudgetExceeded` when the budget is spent; call right before sending."""
        if self.max_cost is None:
            return
        with self._lock:
            spent = self._total.cost_usd
            if spent < self.max_cost:
                return
            self._refused += 1
        where = f" ({request.stage} {request.gen_id})" if request.gen_id else f" ({request.stage})"
        raise BudgetExceeded(
            f"budget spent: ${spent:.4f} of max_cost ${self.max_cost:.4f}; not starting the "
            f"call to model '{request.model_id}'{where}. Raise max_cost to continue; finished "
            "generations are kept and will be reused."
        )

    def record(self, request: GenerationRequest, result: GenerationResult) -> None:
        """Add ``result``'s usage and cost to the stage's and the overall totals."""
        with self._lock:
            self._total = _add(self._total, result)
            self._by_stage[request.stage] = _add(
                self._by_stage.get(request.stage, StageCost()), result
            )

    def summary(self) -> CostSummary:
        """A consistent snapshot of the totals."""
        with self._lock:
            return CostSummary(
                total=self._total,
                by_stage=dict(self._by_stage),
                max_cost=self.max_cost,
                refused_calls=self._refused,
            )
