"""``cohorts/<id>/rounds.json``: the record of a cohort's gate decisions and adaptive rounds.

Written after every decision of a run (atomic replace), read by ``daydream status``, the
report and the explorer. It is a record for people, never an input: a run replays the rounds
from the spec, the seed and the scores on disk (:mod:`._selection`), so a lost or stale file
changes nothing but what the next run writes.
"""

from __future__ import annotations

import math
from typing import Any

from ..cohorts.membership import Membership
from ..data_layer import Paths, _storage
from ..types import STAGES
from ._selection import Selection

__all__ = ["ROUNDS_VERSION", "read_rounds", "rounds_record", "write_rounds"]

ROUNDS_VERSION = 1
STOP_REASONS = ("goal met", "design exhausted", "budget", "stopped")
"""How adaptive evaluation ends: its goal, no evaluation left where it matters, ``--max-cost``
reached, or the run interrupted (the next run continues)."""


def _number(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, 6)


def rounds_record(selection: Selection, membership: Membership, *, stopped_by: str | None = None) -> dict[str, Any]:
    """The JSON record of a selection; ``stopped_by`` (``budget``/``stopped``) when the run ended
    before the rule did."""
    record: dict[str, Any] = {"rounds_version": ROUNDS_VERSION, "settled": selection.settled}
    full = {s: sum(1 for r in membership.rows(s) if r.mode == "llm") for s in STAGES}
    allowed = {s: sum(1 for r in membership.rows(s) if r.mode == "llm" and selection.allows(r.gen_id)) for s in STAGES}
    record["calls"] = {"full_design": full, "allowed": allowed}
    record["withheld"] = {
        stage: {r.gen_id: {"state": held.state, "reason": held.reason}
                for r in membership.rows(stage) if (held := selection.withheld.get(r.gen_id)) is not None}
        for stage in STAGES
    }
    if selection.gate is not None:
        record["gate"] = [
            {"draft_gen_id": d.draft_gen_id, "group": d.group, "screen_score": _number(d.screen_score),
             "rank": d.rank, "group_size": d.group_size, "kept_in_group": d.kept_in_group, "passed": d.passed,
             "reason": d.reason,
             "scores": [{"evaluation_gen_id": s.evaluation_gen_id, "evaluator": s.evaluator, "score": _number(s.score)}
                        for s in d.scores]}
            for d in selection.gate
        ]
    adaptive = selection.adaptive
    if adaptive is not None:
        rule = adaptive.rule
        ended = adaptive.ended or stopped_by
        record["adaptive"] = {
            "rule": {"top": rule.top, "confidence": rule.confidence, "first": rule.first, "batch": rule.batch,
                     "seed": rule.seed},
            "design": adaptive.design,
            "chosen": adaptive.chosen,
            "screened": adaptive.screened,
            "saved": adaptive.saved,
            "stopping_value": _number(adaptive.stopping_value),
            "ended": ended,
            "rounds": [
                {"round": r.number, "stopping_value_before": _number(r.stopping_value), "undecided_before": r.undecided,
                 "complete": r.complete, "evaluations": [{"gen_id": p.gen_id, "reason": p.reason} for p in r.picks]}
                for r in adaptive.rounds
            ],
        }
    return record


def write_rounds(root: str, cohort_id: str, selection: Selection, membership: Membership, *,
                 stopped_by: str | None = None) -> str:
    """Write ``rounds.json`` (the cohort has a gate or adaptive evaluation); returns its path."""
    path = Paths.from_str(root).cohort_rounds_path(cohort_id)
    text = _storage.dump_json(rounds_record(selection, membership, stopped_by=stopped_by))
    if not path.is_file() or _storage.read_text(path) != text:
        _storage.atomic_write_text(path, text)
    return str(path)


def read_rounds(root: str, cohort_id: str) -> dict[str, Any] | None:
    """The last ``rounds.json`` written, or ``None``."""
    path = Paths.from_str(root).cohort_rounds_path(cohort_id)
    if not path.is_file():
        return None
    return _storage.read_json_object(path)
