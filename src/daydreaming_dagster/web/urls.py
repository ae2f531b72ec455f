"""The explorer's stable page URLs (defined in :mod:`daydreaming_dagster.urls`, below the report
and the web app, and re-exported here for the app's own modules)."""

from ..urls import DEFAULT_EXPLORER_URL, DEFAULT_PORT, cohort_url, essay_url, explorer_hint

__all__ = ["DEFAULT_EXPLORER_URL", "DEFAULT_PORT", "cohort_url", "essay_url", "explorer_hint"]
