"""Fixtures for the whole suite.

``ingress_server``: the public fixture with strict OAuth credentials.

The public fixture accepts the ingress token as the OAuth token and any
organization (a user's first test should just work). This suite checks that
the clients send the right credentials, so its server has a distinct OAuth
token and a fixed organization: a wrong token is 401, a wrong org 403.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ingress_logging.server import IngressServer


@pytest.fixture
def ingress_server(ingress_server_factory: Callable[..., IngressServer]) -> IngressServer:
    return ingress_server_factory(
        oauth_token=f"oauth-{secrets.token_urlsafe(16)}", org_uuid=str(uuid.uuid4())
    )


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` passes.

    For state another thread settles, such as the engine's reporter thread
    handing diagnostics to the sinks (``flush()`` returning does not mean
    they have been called yet). Returns the last value, for the test to assert.
    """

    def wait(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.005)

    return wait


# --- PostgreSQL for the conformance runs (tests/server, tests/client) ---------
#
# INGRESS_LOGGING_TEST_PG is a libpq URL of a role that may CREATE DATABASE
# (.ci/run and scripts/postgres create one); the run creates one database and
# every test a schema of its own in it, dropped afterwards. Without PostgreSQL
# binaries on the machine the postgres runs skip; INGRESS_LOGGING_REQUIRE_PG=1
# (set by .ci/run) turns that skip into a failure.

PG_DEFAULT_URL = "postgresql://ingress_test:ingress_test@127.0.0.1:5432/postgres"


def _postgres_installed() -> bool:
    import glob
    import shutil

    return bool(shutil.which("postgres") or glob.glob("/usr/lib/postgresql/*/bin/postgres"))


@pytest.fixture(scope="session")
def pg_database_url() -> Any:
    """A fresh database for this test run (dropped at the end)."""
    import os
    from urllib.parse import urlsplit

    if not _postgres_installed():
        message = "no PostgreSQL binaries on this machine (postgres not found)"
        if os.environ.get("INGRESS_LOGGING_REQUIRE_PG"):
            pytest.fail(message + " but INGRESS_LOGGING_REQUIRE_PG is set")
        pytest.skip(message)
    import psycopg

    admin_url = os.environ.get("INGRESS_LOGGING_TEST_PG", PG_DEFAULT_URL)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        where = urlsplit(admin_url)
        pytest.fail(
            f"PostgreSQL is installed but {where.hostname}:{where.port} does not accept"
            f" {where.username}: start it with `bash scripts/postgres`"
            f" ({str(exc).splitlines()[0]})"
        )
    name = f"ingress_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database_url: str) -> Any:
    """A libpq URL whose connections live in a schema of their own (dropped after)."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{pg_database_url}?options=-csearch_path%3D{schema}"
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
