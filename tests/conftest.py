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


def poll(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` passes.

    For state another thread or process settles (the engine's reporter
    handing diagnostics to the sinks, a child process's progress): a
    deadline, never a sleep standing in for synchronisation. Returns the
    last value, for the test to assert (``assert not poll(...)`` checks that
    something does *not* happen within the time); with ``what``, a deadline
    that passes raises ``AssertionError`` naming it instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            if what:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            return value
        time.sleep(0.002)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """The suite's one poll-until helper (``poll``) as a fixture."""
    return poll


@pytest.fixture(autouse=True, scope="session")
def _no_exit_summary_for_the_suite() -> Any:
    """Tests fail deliveries on purpose; the suite's own exit needs no summary line.

    The notices themselves are tested in subprocesses (tests/handler/test_notices.py).
    """
    from ingress_logging._notices import NOTICES

    yield
    NOTICES.reset()


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
