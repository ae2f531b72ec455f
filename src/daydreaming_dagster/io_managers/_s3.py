"""S3-compatible IO manager (AWS S3, MinIO, moto, ...): dicts as JSON objects, polars frames
as Parquet objects, one object per asset partition. Each write is a single PUT, so readers
see a whole object or none."""

from __future__ import annotations

import threading
from typing import Any

import polars as pl
from dagster import InputContext, MetadataValue, OutputContext
from pydantic import Field, PrivateAttr

from ..errors import ConfigError
from . import _codec
from ._base import PartitionAwareIOManager, StoredValueMissing
from ._naming import StorageLocation

# Buckets already checked (or created) in this process, by (endpoint, bucket).
_READY_BUCKETS: set[tuple[str, str]] = set()
_READY_LOCK = threading.Lock()

_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "403",
}
_MISSING_BUCKET_CODES = {"NoSuchBucket", "404", "NotFound"}


class S3IOManager(PartitionAwareIOManager):
    """Store values as objects ``s3://<bucket>/<prefix>/<asset>[/<partition>].json|.parquet``.

    ``endpoint_url`` selects an S3-compatible server (``None`` = AWS); ``access_key`` and
    ``secret_key`` should come from ``EnvVar`` (``None`` = boto3's default credential chain,
    e.g. an instance role). With ``create_bucket`` a missing bucket is created on first use.
    Connection, credential and bucket problems raise ``ConfigError`` naming the endpoint and
    bucket, never the secret.
    """

    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint; None for AWS S3."
    )
    access_key: str | None = Field(default=None, description="Access key id (use EnvVar).")
    secret_key: str | None = Field(default=None, description="Secret access key (use EnvVar).")
    bucket: str = Field(description="Bucket holding the stored values.")
    region: str | None = Field(default="us-east-1", description="Region of the bucket.")
    use_ssl: bool = Field(
        default=True, description="Use HTTPS (False for a plain-HTTP local server)."
    )
    create_bucket: bool = Field(
        default=True, description="Create the bucket when it does not exist."
    )
    prefix: str = Field(
        default="", description="Key prefix inside the bucket (no leading/trailing '/')."
    )

    _client: Any = PrivateAttr(default=None)

    # -- naming -----------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The endpoint for messages (``AWS S3 (<region>)`` when none is configured)."""
        return self.endpoint_url or f"AWS S3 ({self.region or 'default region'})"

    def key_for(self, location: StorageLocation, extension: str) -> str:
        """Object key of ``location`` in ``extension`` format."""
        prefix = self.prefix.strip("/")
        name = location.file_name(extension)
        return f"{prefix}/{name}" if prefix else name

    def uri_for(self, location: StorageLocation, extension: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(location, extension)}"

    # -- client -----------------------------------------------------------------------------
    def client(self) -> Any:
        """A boto3 S3 client for this configuration, with the bucket checked (or created)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # Custom endpoints (MinIO, moto) rarely support virtual-host bucket addressing.
                s3={"addressing_style": "path"} if self.endpoint_url else None,
            )
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
                use_ssl=self.use_ssl,
                config=config,
            )
        self._ensure_bucket(self._client)
        return self._client

    def _ensure_bucket(self, client: Any) -> None:
        marker = (self.endpoint, self.bucket)
        with _READY_LOCK:
            if marker in _READY_BUCKETS:
                return
        try:
            client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001 - translated below, re-raised otherwise
            if _error_code(exc) not in _MISSING_BUCKET_CODES:
                raise self._translate(exc, "checking bucket") from None
            if not self.create_bucket:
                raise ConfigError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}; create it, or set "
                    "create_bucket=True on the S3 IO manager"
                ) from None
            self._create_bucket(client)
        with _READY_LOCK:
            _READY_BUCKETS.add(marker)

    def _create_bucket(self, client: Any) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            client.create_bucket(**kwargs)
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise self._translate(exc, "creating bucket") from None

    def _translate(self, exc: Exception, action: str) -> ConfigError:
        """A ``ConfigError`` naming endpoint and bucket (and never the secret) for ``exc``."""
        from botocore.exceptions import EndpointConnectionError, NoCredentialsError

        where = f"S3 bucket {self.bucket!r} at {self.endpoint}"
        code = _error_code(exc)
        if isinstance(exc, EndpointConnectionError):
            message = f"cannot reach {where} while {action}: is the server running and the endpoint URL right?"
        elif isinstance(exc, NoCredentialsError):
            message = (
                f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        elif code in _AUTH_CODES:
            message = (
                f"{where} refused the credentials while {action} ({code}): check AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY and the bucket's permissions"
            )
        else:
            message = f"S3 error while {action} on {where}: {type(exc).__name__}: {exc}"
        if self.secret_key:
            message = message.replace(self.secret_key, "***")
        return ConfigError(message)

    # -- store / load -----------------------------------------------------------------------
    def _store(
        self, context: OutputContext, location: StorageLocation, obj: dict | pl.DataFrame
    ) -> dict[str, Any]:
        client = self.client()
        extension = _codec.extension_for(obj)
        content_type = (
            "application/json"
            if extension == _codec.JSON_EXTENSION
            else "application/vnd.apache.parquet"
        )
        try:
            client.put_object(
                Bucket=self.bucket,
                Key=self.key_for(location, extension),
                Body=_codec.encode(obj),
                ContentType=content_type,
            )
            for other in _codec.EXTENSIONS:
                if other != extension:
                    client.delete_object(Bucket=self.bucket, Key=self.key_for(location, other))
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, f"writing {location.describe()}") from None
        metadata: dict[str, Any] = {"uri": MetadataValue.path(self.uri_for(location, extension))}
        rows = _codec.row_count(obj)
        if rows is not None:
            metadata["row_count"] = rows
        return metadata

    def _load(self, context: InputContext, location: StorageLocation) -> Any:
        client = self.client()
        for extension in _codec.EXTENSIONS:
            key = self.key_for(location, extension)
            try:
                body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except Exception as exc:  # noqa: BLE001
                if _error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                    continue
                raise self._translate(exc, f"reading {location.describe()}") from None
            return _codec.decode(extension, body, f"s3://{self.bucket}/{key}")
        raise StoredValueMissing(
            f"nothing stored for {location.describe()}: expected {self.uri_for(location, 'parquet')} or "
            f"{self.uri_for(location, 'json')} at {self.endpoint}; materialise that asset first"
        )


def _error_code(exc: Exception) -> str:
    """The S3 error code of a botocore ``ClientError`` (``""`` for other exceptions)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
