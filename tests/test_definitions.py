"""Definitions smoke test: the project's one Definitions object loads, as a module and as a
file (the way `dagster ... -f src/daydreaming_dagster/definitions.py` loads it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dagster import Definitions

import daydreaming_dagster.definitions as definitions_module

DEFINITIONS_FILE = Path(definitions_module.__file__)


def _check(defs: Definitions) -> None:
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    for stage in ("draft", "essay", "evaluation"):
        for phase in ("prompt", "raw", "parsed"):
            assert f"{stage}_{phase}" in keys
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {"cohort", "generation_draft", "generation_essay", "generation_evaluation", "results"} <= groups
    resources = set(defs.resources or {})
    assert {"data_root", "stage_settings", "llm", "prompt_io_manager",
            "json_io_manager", "table_io_manager", "graph_io_manager"} <= resources


def test_definitions_module_loads() -> None:
    _check(definitions_module.defs)


def test_definitions_file_loads_like_dagster_f() -> None:
    spec = importlib.util.spec_from_file_location("definitions_from_file", DEFINITIONS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _check(module.defs)
