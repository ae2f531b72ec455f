"""FilesystemIOManager: JSON and Parquet files per asset and partition, via materialize()."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, asset, materialize

from daydreaming_dagster.errors import ConfigError
from daydreaming_dagster.io_managers import FilesystemIOManager, StoredValueMissing

from .scenario import (
    CONFIG_VALUE,
    PARTITIONS,
    SCORES,
    assert_loaded_values,
    cohort_frame,
    run_scenario,
)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_round_trip_writes_exactly_the_expected_files(tmp_path: Path) -> None:
    base = tmp_path / "store"
    run = run_scenario(FilesystemIOManager(base_path=str(base)))

    assert_loaded_values(run)
    assert _files(base) == [
        "batch_table/c1.parquet",
        "batch_table/c2.parquet",
        "cohort_info/c1.json",
        "cohort_info/c2.json",
        "cohort_table/c1.parquet",
        "cohort_table/c2.parquet",
        "config_dict.json",
        "score_table.parquet",
        "summary.json",
    ]
    assert json.loads((base / "config_dict.json").read_text(encoding="utf-8")) == CONFIG_VALUE
    assert pl.read_parquet(base / "score_table.parquet").equals(SCORES)
    batch = pl.read_parquet(base / "batch_table" / "c2.parquet")
    assert batch.equals(cohort_frame("c2").with_columns(pl.lit("batch").alias("origin")))
    assert json.loads((base / "summary.json").read_text()) == {
        "cohorts": list(PARTITIONS),
        "rows": 5,
    }
    [meta] = run.output_metadata("score_table")
    assert meta["row_count"] == 3
    assert meta["path"] == str((base / "score_table.parquet").resolve())


def test_switching_value_type_removes_the_stale_file(tmp_path: Path) -> None:
    manager = FilesystemIOManager(base_path=str(tmp_path))
    instance = DagsterInstance.ephemeral()

    @asset(name="thing")
    def as_frame() -> pl.DataFrame:
        return pl.DataFrame({"a": [1]})

    @asset(name="thing")
    def as_dict() -> dict:
        return {"a": 1}

    assert materialize([as_frame], resources={"io_manager": manager}, instance=instance).success
    assert (tmp_path / "thing.parquet").is_file()
    assert materialize([as_dict], resources={"io_manager": manager}, instance=instance).success
    assert _files(tmp_path) == ["thing.json"]


def test_missing_upstream_names_the_expected_files(tmp_path: Path) -> None:
    @asset
    def never_stored() -> dict:
        return {}

    @asset
    def reader(never_stored: dict) -> dict:
        return never_stored

    with pytest.raises(StoredValueMissing, match=r"never_stored\.parquet or .*never_stored\.json"):
        materialize(
            [never_stored, reader],
            selection=[reader],
            resources={"io_manager": FilesystemIOManager(base_path=str(tmp_path))},
            instance=DagsterInstance.ephemeral(),
        )


def test_unsupported_value_type_is_refused(tmp_path: Path) -> None:
    @asset
    def a_list() -> list:
        return [1, 2]

    with pytest.raises(TypeError, match="asset a_list: IO managers store dict .* got list"):
        materialize(
            [a_list],
            resources={"io_manager": FilesystemIOManager(base_path=str(tmp_path))},
            instance=DagsterInstance.ephemeral(),
        )
    assert _files(tmp_path) == []


def test_unsafe_partition_key_is_refused() -> None:
    from daydreaming_dagster.io_managers import storage_location

    with pytest.raises(ConfigError, match="partition key '../x'"):
        storage_location(["a"], "../x")
    assert (
        storage_location(["results", "scores"], "c1").file_name("json") == "results/scores/c1.json"
    )
    assert storage_location(["results", "scores-v2"]).table_name == "results__scores_v2"
