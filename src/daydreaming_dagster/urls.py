"""The explorer's stable page URLs, shared by the web app, the CLI hint and the static report.

A module of its own below both the report (:mod:`daydreaming_dagster.reporting`) and the web app
(:mod:`daydreaming_dagster.web`), so the report links to the explorer without importing it.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["DEFAULT_EXPLORER_URL", "DEFAULT_PORT", "cohort_url", "essay_url", "explorer_hint"]

DEFAULT_PORT = 8000
DEFAULT_EXPLORER_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def cohort_url(cohort_id: str, base: str = DEFAULT_EXPLORER_URL) -> str:
    """``<base>/cohorts/<cohort_id>``: the cohort's essay table."""
    return f"{base.rstrip('/')}/cohorts/{quote(cohort_id, safe='')}"


def essay_url(cohort_id: str, essay_gen_id: str, base: str = DEFAULT_EXPLORER_URL) -> str:
    """``<base>/cohorts/<cohort_id>/essays/<essay_gen_id>``: one essay with its lineage."""
    return f"{cohort_url(cohort_id, base)}/essays/{quote(essay_gen_id, safe='')}"


def explorer_hint(cohort_id: str) -> str:
    """The one line ``daydream run`` and ``daydream report`` print to point at the explorer."""
    return f"explore: uv run daydream view  →  {cohort_url(cohort_id)}"
