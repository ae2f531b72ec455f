"""Fixtures every test gets, so no test can touch a real data root, a real Dagster home or
a paid model endpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real servers (moto S3, PostgreSQL) shared by every test directory.
pytest_plugins = ["tests.support.fixtures"]

# Variables that would point a test at real services, keys or shared state.
_ISOLATED_ENV = (
    "OPENROUTER_API_KEY",
    "OPENAI_API_KEY",
    "DAYDREAMING_LLM_BASE_URL",
    "DAYDREAMING_LLM_API_KEY",
    "DAYDREAMING_ENV",
    "DAYDREAMING_DATA_ROOT",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Clear keys and roots from the environment and give each test its own DAGSTER_HOME,
    so tests never call a paid API nor share Dagster instance state."""
    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    """A fresh copy of the shipped catalogs and demo cohort spec (no generated files)."""
    from tests.support.demo import copy_demo

    return copy_demo(tmp_path / "data")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """An empty data root in a temporary directory."""
    root = tmp_path / "data"
    root.mkdir()
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # In CI nothing marked slow may be deselected by accident: fail loudly instead.
    if os.environ.get("CI") and config.getoption("-m") and "not slow" in config.getoption("-m"):
        raise pytest.UsageError("CI must run the slow real-server tests; drop -m 'not slow'")
