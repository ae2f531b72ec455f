"""Which IO managers a deployment uses, chosen by ``DAYDREAMING_ENV`` (seed 004).

Assets name three resource keys; the environment decides what stands behind them:

=========  ==============================  ============================  ==========================
env        ``json_io_manager`` (dicts)     ``table_io_manager`` (frames)  ``graph_io_manager``
=========  ==============================  ============================  ==========================
dev        files under                     DuckDB file                   Kuzu files under
(default)  ``<data_root>/results/store``   ``<data_root>/results.duckdb``  ``<data_root>/results/graph``
staging    S3-compatible server            PostgreSQL                    Kuzu files (local)
           (``DAYDREAMING_S3_ENDPOINT_URL``)
prod       AWS S3 (or the endpoint set)    PostgreSQL                    Kuzu files (local)
test       in memory                       in memory                     in memory
=========  ==============================  ============================  ==========================

Settings (read when the IO managers are built; secrets are passed as ``EnvVar`` so their
values are resolved only at run time and never appear in run config, metadata or logs):

- staging/prod object storage: ``DAYDREAMING_S3_BUCKET`` (required), ``DAYDREAMING_S3_ENDPOINT_URL``
  (required in staging; optional in prod, default AWS), ``DAYDREAMING_S3_PREFIX`` (default
  ``results``), ``DAYDREAMING_S3_REGION`` (else ``AWS_REGION``, else ``us-east-1``),
  ``DAYDREAMING_S3_CREATE_BUCKET`` (``1``/``0``; default on in staging, off in prod),
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (required in staging; in prod, when unset,
  boto3's default chain such as an instance role is used).
- staging/prod PostgreSQL: ``DAYDREAMING_PG_HOST``, ``DAYDREAMING_PG_DB``, ``DAYDREAMING_PG_USER``,
  ``DAYDREAMING_PG_PASSWORD`` (required), ``DAYDREAMING_PG_PORT`` (default 5432),
  ``DAYDREAMING_PG_SCHEMA`` (default ``daydreaming``).
- graph: ``DAYDREAMING_GRAPH_PATH`` overrides the Kuzu directory (default
  ``<data_root>/results/graph``, or ``data/results/graph`` when the data root is a URL).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import ConfigurableIOManager, EnvVar

from .data_layer import default_data_root
from .errors import ConfigError
from .io_managers import (
    DuckDBIOManager,
    FilesystemIOManager,
    InMemoryIOManager,
    KuzuDBIOManager,
    S3IOManager,
    SQLIOManager,
)

__all__ = [
    "ENVIRONMENTS",
    "ENV_VAR",
    "GRAPH_IO_MANAGER_KEY",
    "JSON_IO_MANAGER_KEY",
    "TABLE_IO_MANAGER_KEY",
    "current_environment",
    "io_managers_for_environment",
]

ENV_VAR = "DAYDREAMING_ENV"
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "prod", "test")
DEFAULT_ENVIRONMENT = "dev"

JSON_IO_MANAGER_KEY = "json_io_manager"
TABLE_IO_MANAGER_KEY = "table_io_manager"
GRAPH_IO_MANAGER_KEY = "graph_io_manager"

_PG_REQUIRED = (
    "DAYDREAMING_PG_HOST",
    "DAYDREAMING_PG_DB",
    "DAYDREAMING_PG_USER",
    "DAYDREAMING_PG_PASSWORD",
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def current_environment(env: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``env``, else ``DAYDREAMING_ENV``, else ``dev``; ``ConfigError`` listing the choices
    for anything else."""
    environ = os.environ if environ is None else environ
    chosen = (
        (env if env is not None else environ.get(ENV_VAR) or DEFAULT_ENVIRONMENT).strip().lower()
    )
    if chosen not in ENVIRONMENTS:
        raise ConfigError(
            f"unknown environment {chosen!r} (from {ENV_VAR} or the env argument); choose one of: {', '.join(ENVIRONMENTS)}"
        )
    return chosen


def io_managers_for_environment(
    env: str | None = None, data_root: str | None = None
) -> dict[str, ConfigurableIOManager]:
    """Build the ``json_io_manager`` / ``table_io_manager`` / ``graph_io_manager`` resources
    for ``env`` (default: ``DAYDREAMING_ENV``, else ``dev``).

    ``data_root`` (default ``DAYDREAMING_DATA_ROOT``, else ``data``) places the dev stores and
    the local graph files. Raises ``ConfigError`` for an unknown environment or when settings
    the environment needs are missing (all missing names are listed at once).
    """
    chosen = current_environment(env)
    root = data_root if data_root is not None else default_data_root()
    if chosen == "test":
        return {
            key: InMemoryIOManager()
            for key in (JSON_IO_MANAGER_KEY, TABLE_IO_MANAGER_KEY, GRAPH_IO_MANAGER_KEY)
        }
    if chosen == "dev":
        if "://" in str(root):
            raise ConfigError(
                f"the dev environment keeps results beside a local data root, but the data root is {root!r}; "
                f"set {ENV_VAR}=staging or prod for object storage"
            )
        base = str(root).rstrip("/") or "."
        return {
            JSON_IO_MANAGER_KEY: FilesystemIOManager(base_path=f"{base}/results/store"),
            TABLE_IO_MANAGER_KEY: DuckDBIOManager(db_path=f"{base}/results.duckdb"),
            GRAPH_IO_MANAGER_KEY: KuzuDBIOManager(db_path=f"{base}/results/graph"),
        }
    required = ["DAYDREAMING_S3_BUCKET", *_PG_REQUIRED]
    if chosen == "staging":
        required += ["DAYDREAMING_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    _require(tuple(required), chosen)
    return {
        JSON_IO_MANAGER_KEY: _s3_manager(chosen),
        TABLE_IO_MANAGER_KEY: _postgres_manager(chosen),
        GRAPH_IO_MANAGER_KEY: KuzuDBIOManager(db_path=_graph_path(str(root))),
    }


def _require(names: tuple[str, ...], env: str) -> None:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"the {env} environment needs these environment variables set: {', '.join(missing)}"
        )


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1/0 (or true/false), got {value!r}")


def _s3_manager(env: str) -> S3IOManager:
    endpoint = os.environ.get("DAYDREAMING_S3_ENDPOINT_URL") or None
    has_keys = bool(os.environ.get("AWS_ACCESS_KEY_ID"))
    credentials: dict[str, Any] = {}
    if has_keys:
        credentials = {
            "access_key": EnvVar("AWS_ACCESS_KEY_ID"),
            "secret_key": EnvVar("AWS_SECRET_ACCESS_KEY"),
        }
    return S3IOManager(
        endpoint_url=endpoint,
        bucket=os.environ["DAYDREAMING_S3_BUCKET"],
        region=os.environ.get("DAYDREAMING_S3_REGION")
        or os.environ.get("AWS_REGION")
        or "us-east-1",
        use_ssl=not (endpoint or "").startswith("http://"),
        create_bucket=_flag("DAYDREAMING_S3_CREATE_BUCKET", default=env == "staging"),
        prefix=os.environ.get("DAYDREAMING_S3_PREFIX", "results"),
        **credentials,
    )


def _postgres_manager(env: str) -> SQLIOManager:
    port: Any = EnvVar.int("DAYDREAMING_PG_PORT") if os.environ.get("DAYDREAMING_PG_PORT") else 5432
    return SQLIOManager(
        db_type="postgresql",
        host=EnvVar("DAYDREAMING_PG_HOST"),
        port=port,
        db_name=EnvVar("DAYDREAMING_PG_DB"),
        username=EnvVar("DAYDREAMING_PG_USER"),
        password=EnvVar("DAYDREAMING_PG_PASSWORD"),
        schema=os.environ.get("DAYDREAMING_PG_SCHEMA", "daydreaming"),
    )


def _graph_path(root: str) -> str:
    explicit = os.environ.get("DAYDREAMING_GRAPH_PATH")
    if explicit:
        return explicit
    if "://" in root:
        return "data/results/graph"
    return f"{root.rstrip('/') or '.'}/results/graph"
