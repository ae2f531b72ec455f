"""Every exception the package raises on purpose, in one place.

Each message is meant for a person: it names the file, field or value at fault and,
where possible, how to fix it.
"""

from __future__ import annotations


class DaydreamError(Exception):
    """Base class for errors a user can act on (the CLI prints them as one line, exit 2)."""


class CatalogError(DaydreamError, ValueError):
    """A catalog file under ``1_raw/`` (or ``combo_mappings.csv``) is missing or malformed."""


class SpecError(DaydreamError, ValueError):
    """A cohort spec is invalid: the message names the file, the rule and the offending value."""


class MembershipError(DaydreamError, ValueError):
    """Cohort rows reference templates, models or combos the catalogs do not know."""


class ConfigError(DaydreamError, ValueError):
    """A setting (environment variable, resource config, CLI option) is invalid or missing."""


class GenerationFailure(DaydreamError, RuntimeError):
    """A generation's phase failed after its artefacts were persisted (truncation, min lines, parse).

    ``stage`` and ``gen_id`` identify the generation; ``reason`` is a short machine-readable tag
    (``truncated``, ``min_lines``, ``parse_error``, ``provider_error``, ``budget``...).
    """

    def __init__(self, stage: str, gen_id: str, reason: str, message: str) -> None:
        super().__init__(f"{stage}/{gen_id}: {message}")
        self.stage = stage
        self.gen_id = gen_id
        self.reason = reason
        self.detail = message


class ProviderError(DaydreamError, RuntimeError):
    """A model provider refused or failed a request for good (after any retries).

    ``status`` is the HTTP status when there was one; ``retryable`` says whether a later
    attempt may succeed (rate limit, server error, timeout).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class BudgetExceeded(DaydreamError, RuntimeError):
    """The cohort's ``max_cost`` is spent: no new model call starts."""


class PreflightError(DaydreamError):
    """Pre-flight found problems: nothing was called. ``problems`` holds every one
    (:class:`~daydreaming_dagster.preflight.Problem`); the message lists them, one per line."""

    def __init__(self, problems: tuple, what: str = "the cohort") -> None:  # noqa: ANN001 - tuple[Problem, ...]
        lines = "\n".join(f"  {p.render()}" for p in problems)
        super().__init__(
            f"pre-flight found {len(problems)} problem(s) in {what}; nothing was called:\n{lines}"
        )
        self.problems = problems
