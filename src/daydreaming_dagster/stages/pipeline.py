"""No stage barrier: a generation starts as soon as its parents are parsed (DESIGN §8).

When the stage runs of one invocation overlap (``daydream run`` starts the essay and evaluation
runs while the drafts are still being called), a child's prompt cannot be rendered up front.
The runs share a :class:`ProducerBoard`, registered under the invocation's name, which knows
the generations some run of the invocation will still produce. Then:

- the prompt step renders the prompts whose parents are parsed and *defers* the others;
- the raw step takes each deferred generation once its parents are parsed, renders its prompt,
  calls the model and parses the answer at once, so its own children can start;
- the parsed step finds those parsed already (by this run) and records them.

A parent that no run of the invocation is producing any more and that has no parsed output
lets its child go ahead, which fails and records why (its parent has no parsed output), as
without pipelining. The board is process-local: runs in other processes (``daydream launch``,
the sensor) keep the stage-by-stage order, and a Dagster run without the board's tag behaves as
always. Nothing here imports Dagster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Literal

from ..data_layer import GensDataLayer, resolve_generation_metadata
from ..types import Stage, parent_stage

__all__ = [
    "PIPELINE_TAG",
    "ProducerBoard",
    "Readiness",
    "close_producer_board",
    "known_parents",
    "open_producer_board",
    "parents_of",
    "producer_board",
    "readiness",
]

PIPELINE_TAG = "daydream/pipeline"
"""Run tag naming the :class:`ProducerBoard` a run's steps share with the invocation's other runs."""

Readiness = Literal["ready", "waiting"]


class ProducerBoard:
    """Generations that runs of one invocation will still produce, per stage (thread-safe).

    A generation is *pending* from :meth:`expect` until it is reported :meth:`parsed` or the
    run producing it has :meth:`finished`; children wait only for pending parents, so the
    question "may this child start?" costs a set lookup, no file access."""

    def __init__(self) -> None:
        self._pending: set[tuple[str, str]] = set()
        self._expected: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def expect(self, stage: Stage, gen_ids: Iterable[str]) -> None:
        """A run about to start will produce ``gen_ids``."""
        with self._lock:
            keys = {(stage, gen_id) for gen_id in gen_ids}
            self._pending |= keys
            self._expected |= keys

    def produced_here(self, parents: Iterable[tuple[Stage, str]]) -> bool:
        """True when a run of the invocation produces (or produced) one of ``parents``: a
        prompt rendered from an older output of it may be stale and must be rendered again."""
        with self._lock:
            return any(parent in self._expected for parent in parents)

    def parsed(self, stage: Stage, gen_id: str) -> None:
        """``gen_id`` has its parsed output: its children may start."""
        with self._lock:
            self._pending.discard((stage, gen_id))

    def finished(self, stage: Stage, gen_ids: Iterable[str]) -> None:
        """The run producing ``gen_ids`` has ended (whatever became of them)."""
        with self._lock:
            self._pending.difference_update((stage, gen_id) for gen_id in gen_ids)

    def pending(self, stage: Stage, gen_id: str) -> bool:
        with self._lock:
            return (stage, gen_id) in self._pending


_boards: dict[str, ProducerBoard] = {}
_boards_lock = threading.Lock()


def open_producer_board(name: str) -> ProducerBoard:
    """Create (or return) the board ``name`` of an invocation."""
    with _boards_lock:
        return _boards.setdefault(name, ProducerBoard())


def producer_board(name: str | None) -> ProducerBoard | None:
    """The open board ``name`` in this process, if any (a run of another process has none)."""
    if not name:
        return None
    with _boards_lock:
        return _boards.get(name)


def close_producer_board(name: str) -> None:
    with _boards_lock:
        _boards.pop(name, None)


def parents_of(layer: GensDataLayer, stage: Stage, gen_id: str) -> list[tuple[Stage, str]]:
    """The generations whose parsed output ``stage``/``gen_id`` renders from (none for drafts).

    Raises ``FileNotFoundError`` / ``ValueError`` for missing or malformed metadata."""
    metadata = resolve_generation_metadata(layer, stage, gen_id)
    above = parent_stage(stage)
    if above is None:
        return []
    return [(above, parent) for parent in metadata.parent_gen_ids]


def known_parents(layer: GensDataLayer, stage: Stage, gen_id: str) -> list[tuple[Stage, str]]:
    """:func:`parents_of`, or none when the metadata is missing or malformed (the prompt phase
    then records that problem)."""
    try:
        return parents_of(layer, stage, gen_id)
    except (FileNotFoundError, ValueError):
        return []


def readiness(board: ProducerBoard, parents: Iterable[tuple[Stage, str]]) -> Readiness:
    """``waiting`` while a run of the invocation is still producing one of ``parents``;
    ``ready`` otherwise (parsed, or never coming: the prompt phase then records the failure)."""
    return "waiting" if any(board.pending(stage, gen_id) for stage, gen_id in parents) else "ready"
