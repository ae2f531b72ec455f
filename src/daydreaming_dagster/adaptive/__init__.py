"""Spending where it matters (DESIGN §7, docs/adaptive.md): adaptive evaluation and escalation
gates. No Dagster here.

- :func:`select` replays a cohort's essay gate and adaptive rounds from the spec, the seed and
  the outcomes on disk, and says which members a run may call now (:class:`Selection`).
- :func:`first_round` / :func:`next_round`: where evaluations go (pure allocation).
- :func:`decide_gate`: which drafts pass the essay gate, with the screen scores that decided it.
- ``cohorts/<id>/rounds.json`` records the decisions for status, the report and the explorer.

Typical use::

    from daydreaming_dagster.adaptive import cohort_selection
    selection = cohort_selection("data", "demo")
    selection.adaptive.describe() if selection.adaptive else "full design"
"""

from ._allocation import (
    Candidate,
    Pick,
    RoundChoice,
    TopSetModel,
    first_round,
    next_round,
    stopping_value,
)
from ._cohort import cohort_selection, has_spending, spec_file_or_none, withheld_members
from ._describe import spending_lines
from ._gates import GateDecision, ScreenScore, decide_gate, screen_evaluations
from ._log import STOP_REASONS, read_rounds, rounds_record, write_rounds
from ._selection import (
    AdaptiveProgress,
    Held,
    RoundRecord,
    Selection,
    analysis_fit,
    disk_outcomes,
    select,
    selection_summary,
)

__all__ = [
    "STOP_REASONS",
    "AdaptiveProgress",
    "Candidate",
    "GateDecision",
    "Held",
    "Pick",
    "RoundChoice",
    "RoundRecord",
    "ScreenScore",
    "Selection",
    "TopSetModel",
    "analysis_fit",
    "cohort_selection",
    "decide_gate",
    "disk_outcomes",
    "first_round",
    "next_round",
    "read_rounds",
    "has_spending",
    "rounds_record",
    "screen_evaluations",
    "select",
    "selection_summary",
    "spec_file_or_none",
    "spending_lines",
    "stopping_value",
    "withheld_members",
    "write_rounds",
]
