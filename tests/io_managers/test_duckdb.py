"""DuckDBIOManager on a temporary database file: real tables, one per asset."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
from dagster import DagsterInstance, StaticPartitionsDefinition, asset, materialize

from daydreaming_dagster.io_managers import DuckDBIOManager

from .scenario import CONFIG_VALUE, SCORES, assert_loaded_values, cohort_frame, run_scenario


def _query(db: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(sql).pl()


def test_round_trip_writes_real_tables(tmp_path: Path) -> None:
    db = tmp_path / "results.duckdb"
    run = run_scenario(DuckDBIOManager(db_path=str(db), schema="analytics"))

    assert_loaded_values(run)
    tables = _query(
        db,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics' ORDER BY 1",
    )
    assert tables["table_name"].to_list() == [
        "batch_table",
        "cohort_table",
        "dagster_io_catalog",
        "score_table",
    ]
    scores = _query(db, "SELECT * FROM analytics.score_table ORDER BY _row")
    assert scores.drop("_row").equals(SCORES)
    cohort = _query(
        db,
        "SELECT partition_key, gen_id, value FROM analytics.cohort_table ORDER BY partition_key, _row",
    )
    expected = pl.concat(
        [
            cohort_frame(k).select(pl.lit(k).alias("partition_key"), "gen_id", "value")
            for k in ("c1", "c2")
        ]
    )
    assert cohort.equals(expected)
    catalog = _query(
        db,
        "SELECT asset_key, partition_key, kind, row_count FROM analytics.dagster_io_catalog ORDER BY 1, 2",
    )
    assert catalog.rows() == [
        ("batch_table", "c1", "table", 2),
        ("batch_table", "c2", "table", 3),
        ("cohort_info", "c1", "json", None),
        ("cohort_info", "c2", "json", None),
        ("cohort_table", "c1", "table", 2),
        ("cohort_table", "c2", "table", 3),
        ("config_dict", "", "json", None),
        ("score_table", "", "table", 3),
        ("summary", "", "json", None),
    ]
    [value] = _query(
        db, "SELECT value FROM analytics.dagster_io_catalog WHERE asset_key = 'config_dict'"
    )["value"]
    assert json.loads(value) == CONFIG_VALUE
    [meta] = run.output_metadata("score_table")
    assert meta == {"db_path": str(db), "table": "analytics.score_table", "row_count": 3}


def test_rewriting_a_partition_replaces_only_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    parts = StaticPartitionsDefinition(["a", "b"])
    versions = {
        "a": [pl.DataFrame({"x": [1, 2, 3]}), pl.DataFrame({"x": [9]})],
        "b": [pl.DataFrame({"x": [5]})],
    }

    @asset(partitions_def=parts)
    def numbers(context) -> pl.DataFrame:
        return versions[context.partition_key].pop(0)

    manager = DuckDBIOManager(db_path=str(db))
    instance = DagsterInstance.ephemeral()
    for key in ("a", "b", "a"):
        assert materialize(
            [numbers], partition_key=key, resources={"io_manager": manager}, instance=instance
        ).success
    rows = _query(
        db, "SELECT partition_key, x FROM main.numbers ORDER BY partition_key, _row"
    ).rows()
    assert rows == [("a", 9), ("b", 5)]


def test_a_partition_with_new_columns_rebuilds_the_table(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    parts = StaticPartitionsDefinition(["a", "b"])
    frames = {"a": pl.DataFrame({"x": [1]}), "b": pl.DataFrame({"x": [2], "y": ["new"]})}
    loaded: dict[str, pl.DataFrame] = {}

    @asset(partitions_def=parts)
    def numbers(context) -> pl.DataFrame:
        return frames[context.partition_key]

    @asset
    def reader(numbers: dict) -> None:
        loaded.update(numbers)

    manager = DuckDBIOManager(db_path=str(db))
    instance = DagsterInstance.ephemeral()
    for key in ("a", "b"):
        assert materialize(
            [numbers], partition_key=key, resources={"io_manager": manager}, instance=instance
        ).success
    assert materialize(
        [numbers, reader], selection=[reader], resources={"io_manager": manager}, instance=instance
    ).success
    assert loaded["b"].equals(frames["b"])
    assert loaded["a"].to_dicts() == [{"x": 1, "y": None}]
