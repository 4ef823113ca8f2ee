"""Implementations are called by argument name, as pluggy calls hooks.

Pluggy lets an implementation take only some of a hook's arguments, in any
order (``def ingress_prepare_entry(entry)``). ``PluginHost`` calls the
``ingress_diagnostic`` and ``ingress_prepare_entry`` implementations one by
one (to isolate failures), so it must map arguments by name too: a
positional call would swap values or raise ``TypeError`` - and for
``ingress_prepare_entry`` that drops every entry.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy

from ingress_logging.handler import IngressHandler
from ingress_logging.hookspecs import hookimpl
from ingress_logging.plugins import PluginHost
from ingress_logging.server import IngressServer


class EntryOnlyTagger:
    """Takes only ``entry`` (no ``record``): valid for pluggy."""

    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "deployment": "eu-1"}


class ReorderedSink:
    """Takes the arguments in another order, and one sink takes a subset."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, ...]] = []

    @hookimpl
    def ingress_diagnostic(self, data: Any, event: str, level: str) -> None:
        self.seen.append((level, event, dict(data)))


class EventOnlySink:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def ingress_diagnostic(self, event: str) -> None:
        self.seen.append(event)


def test_sinks_get_their_arguments_by_name(pm: pluggy.PluginManager) -> None:
    reordered, event_only = ReorderedSink(), EventOnlySink()
    pm.register(reordered)
    pm.register(event_only)
    host = PluginHost(pm)

    data = {"status": 500, "attempt": 1}
    host.diagnostic("warn", "session_persist_fail_status", data)

    assert reordered.seen == [("warn", "session_persist_fail_status", data)]
    assert event_only.seen == ["session_persist_fail_status"]
    assert host.sink_failures == 0


def test_an_entry_only_prepare_hook_enriches_what_the_server_stores(
    ingress_server: IngressServer, pm: pluggy.PluginManager
) -> None:
    pm.register(EntryOnlyTagger())
    handler = IngressHandler(
        token=ingress_server.token,
        session_id="entry_only_hook",
        base_api_url=ingress_server.base_url,
        plugins=pm,
    )
    log = logging.getLogger("tests.plugins.entry_only_hook")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("tag me")
        handler.flush()
    finally:
        log.removeHandler(handler)
        handler.close()

    stored = ingress_server.entries("entry_only_hook")
    assert [(e["content"], e["deployment"]) for e in stored] == [("tag me", "eu-1")]
