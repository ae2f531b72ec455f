"""Real-server fixtures for the IO-manager tests (until tests/conftest.py loads the
tests.support.fixtures plugin for the whole suite)."""

from tests.support.fixtures import (  # noqa: F401 - imported to register the fixtures
    _postgres_admin,
    postgres_password_server,
    postgres_server,
    s3_server,
)
