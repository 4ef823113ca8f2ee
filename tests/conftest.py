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


@pytest.fixture(autouse=True, scope="session")
def _no_exit_summary_for_the_suite() -> Any:
    """Tests fail deliveries on purpose; the suite's own exit needs no summary line.

    The notices themselves are tested in subprocesses (tests/handler/test_notices.py).
    """
    from ingress_logging._notices import NOTICES

    yield
    NOTICES.reset()
