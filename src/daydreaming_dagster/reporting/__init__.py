"""The per-cohort report: ``cohorts/<id>/reports/report.md`` and ``report.html`` (DESIGN §7).
No Dagster here; the ``cohort_report`` asset is a thin wrapper.

The top of the results house: the score tables (:mod:`daydreaming_dagster.results`) feed the
analysis (:mod:`daydreaming_dagster.analysis`), and the report reads both. Nothing below imports
this package; the explorer's URLs it links to come from :mod:`daydreaming_dagster.urls`, not
from the web app.

Typical use::

    from daydreaming_dagster.reporting import build_report
    build_report("data", "demo", top_n=5)        # data/cohorts/demo/reports/report.md (+ .html)
"""

from __future__ import annotations

import os

from .report import (
    REPORT_HTML,
    REPORT_MD,
    CohortReport,
    build_report,
    prerender_figures,
    write_cohort_report,
)

__all__ = [
    "REPORT_FIGURES",
    "REPORT_HTML",
    "REPORT_MD",
    "CohortReport",
    "build_report",
    "start_report_prefetch",
    "warm_report_prefetch",
    "write_cohort_report",
]

REPORT_FIGURES = f"{prerender_figures.__module__}:{prerender_figures.__name__}"
"""The name the analysis child process imports to draw this report's figures."""


def warm_report_prefetch(data_root: str | os.PathLike[str], cohort_id: str, *, seed: int, n_boot: int) -> bool:
    """:func:`daydreaming_dagster.analysis.warm_prefetch` whose child also draws this report's
    figures after its analysis; returns whether a child is waiting."""
    from ..analysis import warm_prefetch  # here: importing the report does not load the analysis

    return warm_prefetch(data_root, cohort_id, seed=seed, n_boot=n_boot, figures=REPORT_FIGURES)


def start_report_prefetch(data_root: str | os.PathLike[str], cohort_id: str, *, seed: int, n_boot: int) -> bool:
    """:func:`daydreaming_dagster.analysis.start_prefetch` whose child also draws this report's
    figures after its analysis; returns whether a child is analysing."""
    from ..analysis import start_prefetch

    return start_prefetch(data_root, cohort_id, seed=seed, n_boot=n_boot, figures=REPORT_FIGURES)
