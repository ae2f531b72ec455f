"""Pytest plugin with real-server fixtures (enable with
``pytest_plugins = ["tests.support.fixtures"]`` in the top-level ``tests/conftest.py``).

- ``s3_server``: a moto S3 server on a free loopback port for the test session;
- ``postgres_server``: a throwaway database on ``DAYDREAMING_PG_URL``, on a server already
  listening on 127.0.0.1:5432, or on a throwaway cluster started with initdb/pg_ctl;
- ``postgres_password_server``: a server that really checks passwords (the session server
  when it does, else a throwaway one).

In CI (``CI`` set) these never skip: a missing binary or a server that fails to start fails
the test. Locally they skip, with the reason, only when the binaries are missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .servers import (
    LOOPBACK,
    PostgresServer,
    S3Server,
    ServerUnavailable,
    ThrowawayPostgres,
    create_database,
    drop_database,
    port_open,
    rejects_wrong_password,
    server_from_url,
    start_moto_server,
    start_throwaway_postgres,
    stop_process,
)

PG_URL_ENV = "DAYDREAMING_PG_URL"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"real-server tests must run in CI, but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3-compatible server (moto) over HTTP on 127.0.0.1, with credentials it accepts."""
    try:
        server, process = start_moto_server()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
        raise AssertionError("unreachable") from exc
    try:
        yield server
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[tuple[PostgresServer, ThrowawayPostgres | None]]:
    """An administrative connection target, and the throwaway cluster if we started one."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        yield server_from_url(url), None
        return
    if port_open(LOOPBACK, 5432):
        user = os.environ.get("PGUSER", "postgres")
        yield PostgresServer(LOOPBACK, 5432, user, os.environ.get("PGPASSWORD"), "postgres"), None
        return
    try:
        cluster = start_throwaway_postgres()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
        raise AssertionError("unreachable") from exc
    try:
        yield cluster.server, cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_server(
    _postgres_admin: tuple[PostgresServer, ThrowawayPostgres | None],
) -> Iterator[PostgresServer]:
    """A fresh, uniquely named PostgreSQL database for this session (dropped afterwards)."""
    admin, _ = _postgres_admin
    try:
        database = create_database(admin)
    except Exception as exc:  # noqa: BLE001 - a reachable-but-refusing server is a real failure
        pytest.fail(
            f"cannot create a test database on PostgreSQL {admin.host}:{admin.port} as {admin.user!r}: {exc} "
            f"(set {PG_URL_ENV}=postgresql://user:password@host:port/postgres)",
            pytrace=False,
        )
    try:
        yield database
    finally:
        drop_database(admin, database.database)


@pytest.fixture(scope="session")
def postgres_password_server(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A PostgreSQL database whose server rejects wrong passwords (for credential tests)."""
    if rejects_wrong_password(postgres_server):
        yield postgres_server
        return
    try:
        cluster = start_throwaway_postgres()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
        raise AssertionError("unreachable") from exc
    try:
        yield create_database(cluster.server)
    finally:
        cluster.stop()
