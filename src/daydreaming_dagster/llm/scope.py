"""What the model clients of one invocation share when its runs overlap in one process.

``daydream run`` may run several Dagster runs at once (stages of different chunks of a
cohort overlapping); each raw step builds its own client, but all of them must respect one cap
on calls in flight, one schedule per rate-limited model and one budget. A :class:`CallScope`
holds those, registered under a name that the invocation passes to every run
(``LLMResource.scope``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .budget import CostLedger
from .limits import RequestLimits
from .slots import CallSlots


@dataclass
class CallScope:
    """Call slots, request limits and cost ledger shared by every client of one scope."""

    name: str
    slots: CallSlots
    ledger: CostLedger
    _limits: RequestLimits | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def limits(self, build: Callable[[], RequestLimits]) -> RequestLimits:
        """The scope's request limits, built by the first client that asks (it knows the
        catalog's rates); later clients share them."""
        with self._lock:
            if self._limits is None:
                self._limits = build()
            return self._limits


_scopes: dict[str, CallScope] = {}
_scopes_lock = threading.Lock()


def call_scope(name: str, *, concurrency: int, max_cost: float | None) -> CallScope:
    """The scope ``name``, created on first use with ``concurrency`` slots and ``max_cost``.

    Raises ``ValueError`` when it exists with another cap or budget: two runs of one
    invocation disagreeing on them is a bug, not something to paper over.
    """
    with _scopes_lock:
        scope = _scopes.get(name)
        if scope is None:
            scope = _scopes[name] = CallScope(name, CallSlots(concurrency), CostLedger(max_cost))
        elif scope.slots.capacity != concurrency or scope.ledger.max_cost != max_cost:
            raise ValueError(
                f"call scope {name!r} exists with concurrency {scope.slots.capacity} and max_cost "
                f"{scope.ledger.max_cost}, not {concurrency} and {max_cost}"
            )
        return scope


def close_call_scope(name: str) -> None:
    """Forget the scope ``name`` (its invocation has finished)."""
    with _scopes_lock:
        _scopes.pop(name, None)
