"""End to end: a diagnostics plugin receives the delivery engine's real events.

A flaky server (two 503s, then success) makes the engine emit the seed's
``session_persist_fail_status`` through PluginHost; a registered sink plugin
sees each one, a broken sink next to it changes nothing, and the entry is
still stored exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ingress_logging.diagnostics import (
    DIAGNOSTIC_SINK_FAILED,
    DIAGNOSTICS_LOGGER_NAME,
    SESSION_PERSIST_FAIL_STATUS,
    DiagnosticData,
    Level,
)
from ingress_logging.handler import IngressHandler
from ingress_logging.hookspecs import hookimpl
from ingress_logging.plugins import new_plugin_manager
from ingress_logging.server import IngressServer


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    @hookimpl
    def ingress_diagnostic(self, level: Level, event: str, data: DiagnosticData) -> None:
        with self.lock:
            self.events.append((level, event, dict(data)))


class BrokenSink:
    @hookimpl
    def ingress_diagnostic(self, level: Level, event: str, data: DiagnosticData) -> None:
        raise RuntimeError("this sink always fails")


@pytest.mark.parametrize("with_broken_sink", [False, True])
def test_engine_events_reach_plugin_sinks(
    ingress_server: IngressServer,
    with_broken_sink: bool,
    caplog: pytest.LogCaptureFixture,
    wait_for: Callable[..., Any],
) -> None:
    caplog.set_level(logging.WARNING, logger=DIAGNOSTICS_LOGGER_NAME)
    sink = Sink()
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(sink, name="sink")
    if with_broken_sink:
        pm.register(BrokenSink(), name="broken")
    ingress_server.faults.fail_next(2, status=503, retry_after=0.001)
    handler = IngressHandler(
        token=ingress_server.token,
        session_id="sinks_e2e",
        base_api_url=ingress_server.base_url,
        plugins=pm,
    )
    log = logging.getLogger(f"tests.plugins.sinks_e2e.{with_broken_sink}")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("survives two 503s")
        handler.flush()
    finally:
        log.removeHandler(handler)
        handler.close()

    stored = ingress_server.entries("sinks_e2e")
    assert [e.get("content") for e in stored] == ["survives two 503s"]

    # The engine's reporter thread calls the sinks; flush() does not wait for it.
    def failures() -> list[tuple[str, str, dict[str, Any]]]:
        with sink.lock:
            return [e for e in sink.events if e[1] == SESSION_PERSIST_FAIL_STATUS]

    def reported() -> list[logging.LogRecord]:
        records = list(caplog.records)
        return [r for r in records if getattr(r, "event", None) == DIAGNOSTIC_SINK_FAILED]

    wait_for(lambda: len(failures()) >= 2, what="two sink failures")
    assert [data.get("status") for _lvl, _ev, data in failures()] == [503, 503]
    # Each event the broken sink choked on was isolated and reported, never lost.
    if with_broken_sink:
        wait_for(lambda: len(reported()) >= len(sink.events), what="every event reported")
    assert len(reported()) == (len(sink.events) if with_broken_sink else 0)
