"""The results explorer: a local web app to read, compare and rate a cohort's essays
(``daydream view``, docs/explorer.md). No Dagster here.

Importing this package stays light (no web framework): the app itself is built by
:func:`daydreaming_dagster.web.app.create_app`. The explorer's stable URLs live below it, in
:mod:`daydreaming_dagster.urls`, so the CLI and the static report use them without importing the
web app; :mod:`.urls` re-exports them.
"""

from .urls import DEFAULT_EXPLORER_URL, cohort_url, essay_url, explorer_hint

__all__ = ["DEFAULT_EXPLORER_URL", "cohort_url", "essay_url", "explorer_hint"]
