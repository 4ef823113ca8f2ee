"""Pytest plugin (``pytest11`` entry point): a real local session-ingress server.

Installed with the package, so any project can write::

    def test_my_app_ships_logs(ingress_server):
        run_my_app(base_api_url=ingress_server.base_url, token=ingress_server.token)
        assert ingress_server.entries("my-session")[0]["type"] == "user"

``ingress_server`` is a fresh :class:`~ingress_logging.server.IngressServer`
per test (in-memory SQLite, ephemeral loopback port, faults off, a random
token that also serves as the OAuth token, any organization accepted).
``ingress_server_factory(**kwargs)`` starts more servers, or one with
non-default options (``max_body_bytes``, a file ``db``, ``faults``,
``oauth_token`` and ``org_uuid`` to check credentials), and stops them after
the test. Servers use the store named by the ``ingress_server_db`` fixture
unless ``db=`` is given: ``":memory:"`` here; override that fixture (for
instance with a ``postgresql://`` URL) to run the same tests on another store.
``delay_proxy_factory(target, rtt=0.05)`` puts a network round trip in front
of a server (:class:`~ingress_logging.testing_proxy.DelayProxy`; ``target`` is
a server or a base URL; use the proxy's ``base_url``).
``reorder_proxy_factory(target)`` puts a path that does not keep order in front
of one (:class:`~ingress_logging.testing_reorder.ReorderProxy`: requests
written back to back reach the server in reverse order).
Importing this module has no side effects beyond defining the fixtures; the
server is imported only when a fixture runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ingress_logging.server import IngressServer
    from ingress_logging.testing_proxy import DelayProxy
    from ingress_logging.testing_reorder import ReorderProxy

__all__ = [
    "delay_proxy_factory",
    "ingress_server",
    "ingress_server_db",
    "ingress_server_factory",
    "reorder_proxy_factory",
]


@pytest.fixture
def ingress_server_db() -> str:
    """The ``db`` of the fixture's servers: in-memory SQLite unless overridden."""
    return ":memory:"


@pytest.fixture
def ingress_server_factory(ingress_server_db: str) -> Iterator[Callable[..., IngressServer]]:
    """Start servers with any ``IngressServer`` options; all are closed at teardown."""
    from ingress_logging.server import IngressServer

    started: list[IngressServer] = []

    def factory(**kwargs: Any) -> IngressServer:
        kwargs.setdefault("db", ingress_server_db)
        server = IngressServer(**kwargs).start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.close()


@pytest.fixture
def ingress_server(
    ingress_server_factory: Callable[..., IngressServer],
) -> IngressServer:
    """A running local session-ingress server, fresh for this test."""
    return ingress_server_factory()


@pytest.fixture
def delay_proxy_factory() -> Iterator[Callable[..., DelayProxy]]:
    """Start delaying proxies: ``factory(server_or_url, rtt=seconds)``; closed at teardown."""
    from ingress_logging.testing_proxy import DelayProxy

    started: list[DelayProxy] = []

    def factory(target: IngressServer | str, *, rtt: float = 0.05) -> DelayProxy:
        url = target if isinstance(target, str) else target.base_url
        proxy = DelayProxy(url, rtt=rtt).start()
        started.append(proxy)
        return proxy

    yield factory
    for proxy in reversed(started):
        proxy.close()


@pytest.fixture
def reorder_proxy_factory() -> Iterator[Callable[..., ReorderProxy]]:
    """Start request-reversing proxies: ``factory(server_or_url)``; closed at teardown."""
    from ingress_logging.testing_reorder import ReorderProxy

    started: list[ReorderProxy] = []

    def factory(target: IngressServer | str) -> ReorderProxy:
        url = target if isinstance(target, str) else target.base_url
        proxy = ReorderProxy(url).start()
        started.append(proxy)
        return proxy

    yield factory
    for proxy in reversed(started):
        proxy.close()
