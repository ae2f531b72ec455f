"""S3IOManager against a real S3-compatible server (moto over HTTP on 127.0.0.1)."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from dagster import DagsterInstance, EnvVar, asset, materialize

from daydreaming_dagster.errors import ConfigError
from daydreaming_dagster.io_managers import S3IOManager
from tests.support.servers import S3Server, free_port, unique_bucket

from .scenario import CONFIG_VALUE, SCORES, assert_loaded_values, cohort_frame, run_scenario

pytestmark = pytest.mark.slow


def _keys(server: S3Server, bucket: str) -> list[str]:
    response = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in response.get("Contents", []))


def _one_dict_asset():
    @asset
    def settings() -> dict:
        return {"k": 1}

    return settings


def test_round_trip_creates_bucket_and_writes_exact_objects(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_S3_KEY", s3_server.access_key)
    monkeypatch.setenv("TEST_S3_SECRET", s3_server.secret_key)
    bucket = unique_bucket()
    manager = S3IOManager(
        endpoint_url=s3_server.endpoint_url,
        access_key=EnvVar("TEST_S3_KEY"),
        secret_key=EnvVar("TEST_S3_SECRET"),
        bucket=bucket,
        region=s3_server.region,
        use_ssl=False,
        prefix="results/v1",
    )
    run = run_scenario(manager)

    assert_loaded_values(run)
    assert _keys(s3_server, bucket) == [
        "results/v1/batch_table/c1.parquet",
        "results/v1/batch_table/c2.parquet",
        "results/v1/cohort_info/c1.json",
        "results/v1/cohort_info/c2.json",
        "results/v1/cohort_table/c1.parquet",
        "results/v1/cohort_table/c2.parquet",
        "results/v1/config_dict.json",
        "results/v1/score_table.parquet",
        "results/v1/summary.json",
    ]
    client = s3_server.client()
    body = client.get_object(Bucket=bucket, Key="results/v1/config_dict.json")["Body"].read()
    assert json.loads(body) == CONFIG_VALUE
    table = client.get_object(Bucket=bucket, Key="results/v1/cohort_table/c2.parquet")[
        "Body"
    ].read()
    assert pl.read_parquet(io.BytesIO(table)).equals(cohort_frame("c2"))
    [meta] = run.output_metadata("score_table")
    assert meta == {
        "uri": f"s3://{bucket}/results/v1/score_table.parquet",
        "row_count": SCORES.height,
    }
    # The secret came from the environment and must not be recorded anywhere.
    assert s3_server.secret_key not in run.everything_recorded()
    assert s3_server.secret_key not in repr(run.output_metadata("config_dict"))


def test_wrong_secret_is_a_clear_error_without_the_secret(s3_server: S3Server) -> None:
    bad_secret = "not-the-secret-" + s3_server.secret_key[:4]
    bucket = unique_bucket()
    manager = S3IOManager(
        endpoint_url=s3_server.endpoint_url,
        access_key=s3_server.access_key,
        secret_key=bad_secret,
        bucket=bucket,
        use_ssl=False,
    )
    with pytest.raises(ConfigError) as caught:
        materialize(
            [_one_dict_asset()],
            resources={"io_manager": manager},
            instance=DagsterInstance.ephemeral(),
        )
    message = str(caught.value)
    assert "refused the credentials" in message
    assert bucket in message and s3_server.endpoint_url in message
    assert bad_secret not in message


def test_missing_bucket_without_creation_is_a_clear_error(s3_server: S3Server) -> None:
    bucket = unique_bucket("absent")
    manager = S3IOManager(
        endpoint_url=s3_server.endpoint_url,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=bucket,
        use_ssl=False,
        create_bucket=False,
    )
    with pytest.raises(
        ConfigError,
        match=rf"bucket '{bucket}' does not exist at {s3_server.endpoint_url}.*create_bucket=True",
    ):
        materialize(
            [_one_dict_asset()],
            resources={"io_manager": manager},
            instance=DagsterInstance.ephemeral(),
        )
    existing = [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    assert bucket not in existing


def test_unreachable_endpoint_is_a_clear_error() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    manager = S3IOManager(
        endpoint_url=endpoint,
        access_key="k",
        secret_key="s3cr3t-value",
        bucket="some-bucket",
        use_ssl=False,
    )
    with pytest.raises(ConfigError) as caught:
        materialize(
            [_one_dict_asset()],
            resources={"io_manager": manager},
            instance=DagsterInstance.ephemeral(),
        )
    message = str(caught.value)
    assert f"cannot reach S3 bucket 'some-bucket' at {endpoint}" in message
    assert "s3cr3t-value" not in message


def test_overwrite_replaces_the_object(s3_server: S3Server) -> None:
    bucket = unique_bucket()
    manager = S3IOManager(
        endpoint_url=s3_server.endpoint_url,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=bucket,
        use_ssl=False,
    )
    frames = iter([pl.DataFrame({"v": [1, 2]}), pl.DataFrame({"v": [3]})])

    @asset
    def numbers() -> pl.DataFrame:
        return next(frames)

    instance = DagsterInstance.ephemeral()
    for _ in range(2):
        assert materialize([numbers], resources={"io_manager": manager}, instance=instance).success
    body = s3_server.client().get_object(Bucket=bucket, Key="numbers.parquet")["Body"].read()
    assert pl.read_parquet(io.BytesIO(body))["v"].to_list() == [3]
    assert _keys(s3_server, bucket) == ["numbers.parquet"]
