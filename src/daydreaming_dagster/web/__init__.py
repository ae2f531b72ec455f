"""The results explorer: a local web app to read, compare and rate a cohort's essays
(``daydream view``, docs/explorer.md). No Dagster here.

Importing this package stays light (no web framework): the app itself is built by
:func:`daydreaming_dagster.web.app.create_app`; :mod:`.urls` gives the explorer's stable URLs to
the CLI and the static report.
"""

from .urls import DEFAULT_EXPLORER_URL, cohort_url, essay_url, explorer_hint

__all__ = ["DEFAULT_EXPLORER_URL", "cohort_url", "essay_url", "explorer_hint"]
