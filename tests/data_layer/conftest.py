"""Fixtures of the data-layer tests."""

from __future__ import annotations

import pytest

from tests.support.servers import S3Server, unique_bucket


@pytest.fixture
def s3_root(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """An empty bucket and the ``s3://`` data root inside it, with the endpoint and keys in
    the environment the way a deployment sets them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    bucket = unique_bucket("gens")
    s3_server.client().create_bucket(Bucket=bucket)
    return bucket, f"s3://{bucket}/store"
