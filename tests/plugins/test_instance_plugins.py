"""Plugins for one handler only: ``IngressHandler(plugins=[obj])`` against the real server."""

from __future__ import annotations

import logging
from typing import Any

from ingress_logging.handler import IngressHandler
from ingress_logging.hookspecs import hookimpl
from ingress_logging.server import IngressServer


class Tenant:
    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "tenant": self.name}


def test_two_handlers_with_their_own_plugin_lists(ingress_server: IngressServer) -> None:
    settings = {"token": ingress_server.token, "base_api_url": ingress_server.base_url}
    first = IngressHandler(session_id="tenant_a", plugins=[Tenant("a")], **settings)
    second = IngressHandler(session_id="tenant_b", plugins=[Tenant("b")], **settings)
    log = logging.getLogger("tests.plugins.instance_plugins")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(first)
    log.addHandler(second)
    try:
        log.info("to both")
        first.flush()
        second.flush()
    finally:
        log.removeHandler(first)
        log.removeHandler(second)
        first.close()
        second.close()

    assert [e["tenant"] for e in ingress_server.entries("tenant_a")] == ["a"]
    assert [e["tenant"] for e in ingress_server.entries("tenant_b")] == ["b"]
