"""Dagster resources read their settings from fields first, then the environment."""

from __future__ import annotations

import pytest

from daydreaming_dagster.errors import ConfigError
from daydreaming_dagster.resources import LLMResource


def test_llm_concurrency_comes_from_field_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAYDREAMING_LLM_CONCURRENCY", raising=False)
    assert LLMResource().effective_concurrency() == 16
    monkeypatch.setenv("DAYDREAMING_LLM_CONCURRENCY", "5")
    assert LLMResource().effective_concurrency() == 5
    assert LLMResource(concurrency=3).effective_concurrency() == 3
    monkeypatch.setenv("DAYDREAMING_LLM_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="DAYDREAMING_LLM_CONCURRENCY='many'"):
        LLMResource().effective_concurrency()
