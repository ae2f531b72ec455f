"""SQLIOManager: SQLite on a temporary file, PostgreSQL on a real server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, EnvVar, asset, materialize

from daydreaming_dagster.errors import ConfigError
from daydreaming_dagster.io_managers import SQLIOManager
from tests.support.servers import PostgresServer, free_port

from .scenario import CONFIG_VALUE, SCORES, assert_loaded_values, cohort_frame, run_scenario

_SQLITE_SCORES = SCORES.with_columns(pl.col("passed").cast(pl.Int64))  # SQLite has no boolean type


def _one_asset():
    @asset
    def settings() -> dict:
        return {"k": 1}

    return settings


def test_sqlite_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.io_managers.scenario as scenario

    monkeypatch.setattr(scenario, "SCORES", _SQLITE_SCORES)
    run = run_scenario(SQLIOManager(db_type="sqlite", db_name=str(tmp_path / "local")))

    assert_loaded_values(run)
    db = tmp_path / "local.db"
    with sqlite3.connect(db) as con:
        tables = [
            r[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        cohort = con.execute(
            "SELECT partition_key, gen_id, value FROM cohort_table ORDER BY partition_key, _row"
        ).fetchall()
        catalog = con.execute(
            "SELECT asset_key, partition_key, kind FROM dagster_io_catalog ORDER BY 1, 2"
        ).fetchall()
    assert tables == ["batch_table", "cohort_table", "dagster_io_catalog", "score_table"]
    assert cohort == [(k, g, v) for k in ("c1", "c2") for g, v in cohort_frame(k).iter_rows()]
    assert ("config_dict", "", "json") in catalog and ("cohort_table", "c2", "table") in catalog
    [meta] = run.output_metadata("score_table")
    assert meta == {"database": f"SQLite database {db}", "table": "score_table", "row_count": 3}


@pytest.mark.slow
def test_postgres_round_trip_with_env_credentials(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = postgres_server.password or ""
    monkeypatch.setenv("TEST_PG_PASSWORD", password)
    manager = SQLIOManager(
        db_type="postgresql",
        host=postgres_server.host,
        port=postgres_server.port,
        db_name=postgres_server.database,
        username=postgres_server.user,
        password=EnvVar("TEST_PG_PASSWORD"),
        schema="results_test",
    )
    run = run_scenario(manager)

    assert_loaded_values(run)
    with postgres_server.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'results_test' ORDER BY 1"
            ).fetchall()
        ]
        scores = pl.read_database(
            "SELECT * FROM results_test.score_table ORDER BY _row", connection=conn
        )
        config = conn.execute(
            "SELECT value FROM results_test.dagster_io_catalog WHERE asset_key = 'config_dict' AND partition_key = ''"
        ).fetchone()[0]
        counts = conn.execute(
            "SELECT partition_key, count(*) FROM results_test.cohort_table GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert tables == ["batch_table", "cohort_table", "dagster_io_catalog", "score_table"]
    assert scores.drop("_row").equals(SCORES)
    assert json.loads(config) == CONFIG_VALUE
    assert counts == [("c1", 2), ("c2", 3)]
    if password:
        assert password not in run.everything_recorded()


@pytest.mark.slow
def test_postgres_wrong_password_is_a_clear_error(postgres_password_server: PostgresServer) -> None:
    server = postgres_password_server
    wrong = "wrong-password-123"
    manager = SQLIOManager(
        db_type="postgresql",
        host=server.host,
        port=server.port,
        db_name=server.database,
        username=server.user,
        password=wrong,
    )
    with pytest.raises(ConfigError) as caught:
        materialize(
            [_one_asset()], resources={"io_manager": manager}, instance=DagsterInstance.ephemeral()
        )
    message = str(caught.value)
    assert (
        f"cannot connect to PostgreSQL at {server.host}:{server.port} database {server.database!r}"
        in message
    )
    assert "password authentication failed" in message
    assert wrong not in message


def test_postgres_unreachable_host_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    manager = SQLIOManager(
        db_type="postgresql",
        host="127.0.0.1",
        port=port,
        db_name="nowhere",
        username="someone",
        password="pw-secret-42",
    )
    with pytest.raises(ConfigError) as caught:
        materialize(
            [_one_asset()], resources={"io_manager": manager}, instance=DagsterInstance.ephemeral()
        )
    message = str(caught.value)
    assert (
        f"cannot connect to PostgreSQL at 127.0.0.1:{port} database 'nowhere' as user 'someone'"
        in message
    )
    assert "pw-secret-42" not in message
