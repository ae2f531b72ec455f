"""A built cohort's selection: its spec's spending sections replayed against the gens store."""

from __future__ import annotations

import os
from pathlib import Path

from ..cohorts.build import cohort_spec_path, load_membership
from ..cohorts.membership import Membership
from ..cohorts.spec import CohortSpec, load_spec
from ..data_layer import GensDataLayer
from ._selection import FitModel, Selection, disk_outcomes, select

__all__ = ["cohort_selection", "has_spending", "spec_file_or_none", "withheld_members"]


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


def spec_file_or_none(root: str | os.PathLike[str] | Path, cohort_id: str) -> Path | None:
    """The cohort's spec file, or ``None`` when the cohort has none (any more)."""
    from ..cohorts.spec import SPEC_FILENAMES
    from ..data_layer import Paths
    from ..ids import is_valid_gen_id

    if not is_valid_gen_id(cohort_id):
        return None
    spec_dir = Paths.from_str(root).cohort_spec_dir(cohort_id)
    if not any((spec_dir / name).is_file() for name in SPEC_FILENAMES):
        return None
    return cohort_spec_path(root, cohort_id)


def withheld_members(root: str | os.PathLike[str] | Path, cohort_id: str) -> frozenset[str]:
    """Gen ids of ``cohort_id`` that no run may call now (gated, or waiting for / left out by an
    adaptive round): empty for a cohort without spending sections or without a spec any more.

    Replayed from disk, so it is right whoever launched the run (``daydream run``, the cohort
    sensor, ``daydream launch``, a backfill tagged with the cohort): members only ever move
    from withheld to allowed as outcomes arrive, so a range run may span withheld keys and skip
    them.
    """
    spec_path = spec_file_or_none(root, cohort_id)
    if spec_path is None:
        return frozenset()
    spec = load_spec(spec_path)
    if not has_spending(spec):
        return frozenset()
    return frozenset(cohort_selection(root, cohort_id, spec=spec).withheld)
