"""This suite's ``ingress_server``: the public fixture with strict OAuth credentials.

The public fixture accepts the ingress token as the OAuth token and any
organization (a user's first test should just work). This suite checks that
the clients send the right credentials, so its server has a distinct OAuth
token and a fixed organization: a wrong token is 401, a wrong org 403.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable

import pytest

from ingress_logging.server import IngressServer


@pytest.fixture
def ingress_server(ingress_server_factory: Callable[..., IngressServer]) -> IngressServer:
    return ingress_server_factory(
        oauth_token=f"oauth-{secrets.token_urlsafe(16)}", org_uuid=str(uuid.uuid4())
    )
