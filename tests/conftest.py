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
    """Poll ``condition`` until it returns a truthy value; that value is returned.

    For state another thread or process settles (the engine's reporter
    handing diagnostics to the sinks, a child process's progress): a
    deadline, never a sleep standing in for synchronisation. Raises
    ``AssertionError`` naming ``what`` when ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
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
