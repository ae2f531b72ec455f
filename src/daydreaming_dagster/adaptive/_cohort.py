"""A built cohort's selection: its spec's spending sections replayed against the gens store."""

from __future__ import annotations

import os
from pathlib import Path

from ..cohorts.build import cohort_spec_path, load_membership
from ..cohorts.membership import Membership
from ..cohorts.spec import CohortSpec, load_spec
from ..data_layer import GensDataLayer
from ._selection import FitModel, Selection, disk_outcomes, select

__all__ = ["cohort_selection", "has_spending"]


def has_spending(spec: CohortSpec) -> bool:
    """True when the spec gates a stage or adapts evaluation (runs go round by round)."""
    return spec.adaptive is not None or spec.essay_gate is not None


def cohort_selection(root: str | os.PathLike[str] | Path, cohort_id: str, *, membership: Membership | None = None,
                     spec: CohortSpec | None = None, fit: FitModel | None = None) -> Selection:
    """Which members of ``cohort_id`` a run may call now (an empty selection without spending
    sections). Reads the spec, the membership (default: the built cohort's) and the gens store."""
    spec = spec or load_spec(cohort_spec_path(root, cohort_id))
    if not has_spending(spec):
        return Selection()
    membership = membership or load_membership(root, cohort_id)
    outcome = disk_outcomes(GensDataLayer.from_root(root), membership)
    return select(membership, outcome, adaptive=spec.adaptive, gate=spec.essay_gate, seed=spec.seed or 0, fit=fit)
