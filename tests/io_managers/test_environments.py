"""io_managers_for_environment: the IO-manager set per DAYDREAMING_ENV, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import DagsterInstance, asset, materialize

from daydreaming_dagster.environments import (
    GRAPH_IO_MANAGER_KEY,
    JSON_IO_MANAGER_KEY,
    TABLE_IO_MANAGER_KEY,
    io_managers_for_environment,
)
from daydreaming_dagster.errors import ConfigError
from daydreaming_dagster.io_managers import (
    DuckDBIOManager,
    FilesystemIOManager,
    GraphData,
    InMemoryIOManager,
    KuzuDBIOManager,
    S3IOManager,
    SQLIOManager,
    read_graph,
)
from tests.support.servers import PostgresServer, S3Server, unique_bucket

_STAGING_VARS = {
    "DAYDREAMING_S3_BUCKET": "b",
    "DAYDREAMING_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "k",
    "AWS_SECRET_ACCESS_KEY": "s",
    "DAYDREAMING_PG_HOST": "h",
    "DAYDREAMING_PG_DB": "d",
    "DAYDREAMING_PG_USER": "u",
    "DAYDREAMING_PG_PASSWORD": "p",
}


def _assets():
    @asset(io_manager_key=JSON_IO_MANAGER_KEY)
    def run_info() -> dict:
        return {"cohort": "demo", "essays": 3}

    @asset(io_manager_key=TABLE_IO_MANAGER_KEY)
    def scores() -> pl.DataFrame:
        return pl.DataFrame({"essay": ["e_1", "e_2"], "score": [7.0, 5.5]})

    @asset(io_manager_key=GRAPH_IO_MANAGER_KEY)
    def lineage() -> GraphData:
        return GraphData(nodes={"Essay": pl.DataFrame({"id": ["e_1", "e_2"]})})

    return [run_info, scores, lineage]


def test_unknown_environment_lists_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown environment 'qa'.*dev, staging, prod, test"):
        io_managers_for_environment("qa")
    monkeypatch.setenv("DAYDREAMING_ENV", "production")
    with pytest.raises(ConfigError, match="unknown environment 'production'"):
        io_managers_for_environment()


def test_dev_is_the_default_and_lands_beside_the_data_root(data_root: Path) -> None:
    managers = io_managers_for_environment(data_root=str(data_root))
    assert isinstance(managers[JSON_IO_MANAGER_KEY], FilesystemIOManager)
    assert isinstance(managers[TABLE_IO_MANAGER_KEY], DuckDBIOManager)
    assert isinstance(managers[GRAPH_IO_MANAGER_KEY], KuzuDBIOManager)

    assert materialize(_assets(), resources=managers, instance=DagsterInstance.ephemeral()).success
    assert json.loads((data_root / "results" / "store" / "run_info.json").read_text()) == {
        "cohort": "demo",
        "essays": 3,
    }
    with duckdb.connect(str(data_root / "results.duckdb"), read_only=True) as con:
        assert con.sql("SELECT essay, score FROM main.scores ORDER BY _row").fetchall() == [
            ("e_1", 7.0),
            ("e_2", 5.5),
        ]
    assert read_graph(data_root / "results" / "graph" / "lineage.kuzu").nodes["Essay"][
        "id"
    ].to_list() == ["e_1", "e_2"]


def test_dev_refuses_an_object_storage_root() -> None:
    with pytest.raises(ConfigError, match="staging or prod"):
        io_managers_for_environment("dev", data_root="s3://bucket/data")


def test_test_environment_is_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYDREAMING_ENV", "test")
    managers = io_managers_for_environment()
    assert all(isinstance(m, InMemoryIOManager) for m in managers.values())
    assert materialize(_assets(), resources=managers, instance=DagsterInstance.ephemeral()).success
    assert managers[JSON_IO_MANAGER_KEY].stored() == {
        (("run_info",), None): {"cohort": "demo", "essays": 3}
    }


def test_staging_names_every_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _STAGING_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAYDREAMING_S3_BUCKET", "b")
    with pytest.raises(ConfigError) as caught:
        io_managers_for_environment("staging")
    missing = str(caught.value).split(": ", 1)[1].split(", ")
    assert sorted(missing) == sorted(set(_STAGING_VARS) - {"DAYDREAMING_S3_BUCKET"})


def test_prod_uses_aws_defaults_and_keeps_secrets_as_env_references(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in _STAGING_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAYDREAMING_S3_BUCKET", "prod-bucket")
    monkeypatch.setenv("DAYDREAMING_S3_REGION", "eu-west-1")
    for name in ("DAYDREAMING_PG_HOST", "DAYDREAMING_PG_DB", "DAYDREAMING_PG_USER"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DAYDREAMING_PG_PASSWORD", "very-secret")
    monkeypatch.setenv("DAYDREAMING_PG_PORT", "6543")
    managers = io_managers_for_environment("prod", data_root=str(tmp_path))
    s3 = managers[JSON_IO_MANAGER_KEY]
    assert isinstance(s3, S3IOManager)
    assert (
        s3.endpoint_url,
        s3.access_key,
        s3.secret_key,
        s3.region,
        s3.create_bucket,
        s3.use_ssl,
        s3.prefix,
    ) == (
        None,
        None,
        None,
        "eu-west-1",
        False,
        True,
        "results",
    )
    sql = managers[TABLE_IO_MANAGER_KEY]
    assert isinstance(sql, SQLIOManager)
    assert "very-secret" not in repr(sql)  # the password stays an environment reference
    assert managers[GRAPH_IO_MANAGER_KEY].db_path == f"{tmp_path}/results/graph"


@pytest.mark.slow
def test_staging_lands_in_the_s3_server_and_postgres(
    s3_server: S3Server,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = unique_bucket("staging")
    password = postgres_server.password or "ignored-by-a-trust-server"
    settings = {
        "DAYDREAMING_S3_BUCKET": bucket,
        "DAYDREAMING_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "DAYDREAMING_S3_PREFIX": "demo",
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "DAYDREAMING_PG_HOST": postgres_server.host,
        "DAYDREAMING_PG_PORT": str(postgres_server.port),
        "DAYDREAMING_PG_DB": postgres_server.database,
        "DAYDREAMING_PG_USER": postgres_server.user,
        "DAYDREAMING_PG_PASSWORD": password,
        "DAYDREAMING_PG_SCHEMA": "staging_results",
        "DAYDREAMING_GRAPH_PATH": str(tmp_path / "graph"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAYDREAMING_ENV", "staging")

    instance = DagsterInstance.ephemeral()
    result = materialize(_assets(), resources=io_managers_for_environment(), instance=instance)
    assert result.success

    body = s3_server.client().get_object(Bucket=bucket, Key="demo/run_info.json")["Body"].read()
    assert json.loads(body) == {"cohort": "demo", "essays": 3}
    with postgres_server.connect() as conn:
        rows = conn.execute(
            "SELECT essay, score FROM staging_results.scores ORDER BY _row"
        ).fetchall()
    assert rows == [("e_1", 7.0), ("e_2", 5.5)]
    assert (tmp_path / "graph" / "lineage.kuzu").is_file()
    recorded = "\n".join(repr(entry) for entry in instance.all_logs(result.run_id))
    recorded += repr(instance.get_run_by_id(result.run_id).run_config)
    assert s3_server.secret_key not in recorded
    assert password not in recorded
