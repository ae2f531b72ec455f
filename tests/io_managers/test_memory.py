"""InMemoryIOManager: the same contract, nothing written anywhere."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from daydreaming_dagster.io_managers import InMemoryIOManager

from .scenario import CONFIG_VALUE, assert_loaded_values, cohort_frame, run_scenario


def test_round_trip_in_memory(tmp_path: Path, monkeypatch) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    manager = InMemoryIOManager()
    run = run_scenario(manager)

    assert_loaded_values(run)
    stored = manager.stored()
    assert sorted((path[-1], key) for path, key in stored) == [
        ("batch_table", "c1"),
        ("batch_table", "c2"),
        ("cohort_info", "c1"),
        ("cohort_info", "c2"),
        ("cohort_table", "c1"),
        ("cohort_table", "c2"),
        ("config_dict", None),
        ("score_table", None),
        ("summary", None),
    ]
    assert stored[(("config_dict",), None)] == CONFIG_VALUE
    assert stored[(("batch_table",), "c1")].equals(
        cohort_frame("c1").with_columns(pl.lit("batch").alias("origin"))
    )
    assert list(workdir.iterdir()) == []  # nothing written to the working directory
    manager.clear()
    assert manager.stored() == {}


def test_separate_managers_do_not_share_values() -> None:
    first, second = InMemoryIOManager(), InMemoryIOManager()
    run_scenario(first)
    assert second.stored() == {}
