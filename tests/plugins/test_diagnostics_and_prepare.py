"""PluginHost.diagnostic (1:N, isolated) and .prepare_entry (a chain that fails closed)."""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

import pluggy
import pytest

from ingress_logging.diagnostics import (
    DIAGNOSTIC_SINK_FAILED,
    DIAGNOSTICS_LOGGER_NAME,
    SESSION_PERSIST_FAIL_STATUS,
    DiagnosticData,
    Level,
)
from ingress_logging.hookspecs import DROP, hookimpl
from ingress_logging.plugins import PLUGIN_FAILED, PluginHost

Event = tuple[str, str, dict[str, Any]]


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def ingress_diagnostic(self, level: Level, event: str, data: DiagnosticData) -> None:
        self.events.append((level, event, dict(data)))


class BrokenSink:
    @hookimpl
    def ingress_diagnostic(self, level: Level, event: str, data: DiagnosticData) -> None:
        raise RuntimeError("sink is broken")


def test_every_sink_gets_every_event_and_a_failing_sink_is_isolated(
    pm: pluggy.PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    before, after = Sink(), Sink()
    pm.register(before)
    pm.register(BrokenSink())
    pm.register(after)
    explicit: list[Event] = []
    host = PluginHost(pm, diagnostics=lambda lvl, ev, d: explicit.append((lvl, ev, dict(d))))
    caplog.set_level(logging.DEBUG, logger=DIAGNOSTICS_LOGGER_NAME)

    host.diagnostic("warn", SESSION_PERSIST_FAIL_STATUS, {"status": 500, "attempt": 1})
    host.diagnostic("info", SESSION_PERSIST_FAIL_STATUS, {"status": 503, "attempt": 2})

    expected = [
        ("warn", SESSION_PERSIST_FAIL_STATUS, {"status": 500, "attempt": 1}),
        ("info", SESSION_PERSIST_FAIL_STATUS, {"status": 503, "attempt": 2}),
    ]
    assert before.events == expected
    assert after.events == expected
    assert explicit == expected
    assert host.sink_failures == 2
    failures = [r for r in caplog.records if getattr(r, "event", None) == DIAGNOSTIC_SINK_FAILED]
    assert len(failures) == 2


def test_a_failing_explicit_sink_is_isolated_too(pm: pluggy.PluginManager) -> None:
    def explode(level: Level, event: str, data: DiagnosticData) -> None:
        raise ValueError("boom")

    sink = Sink()
    pm.register(sink)
    host = PluginHost(pm, diagnostics=explode)
    host.diagnostic("error", "delivery_failed", {"count": 1})  # does not raise
    assert host.sink_failures == 1
    assert sink.events == [("error", "delivery_failed", {"count": 1})]


def test_default_logger_output_unless_an_explicit_sink_replaces_it(
    pm: pluggy.PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=DIAGNOSTICS_LOGGER_NAME)
    pm.register(Sink())  # a plugin sink observes; it does not silence the default
    PluginHost(pm).diagnostic("warn", "delivery_dropped", {"count": 3, "reason": "queue_full"})
    logged = [r for r in caplog.records if r.name == DIAGNOSTICS_LOGGER_NAME]
    # a sentence with the numbers for people; the event name for machines
    assert [(r.levelno, r.getMessage()) for r in logged] == [
        (logging.WARNING, "ingress_logging: 3 entries dropped: the queue was full")
    ]
    assert logged[0].event == "delivery_dropped"
    caplog.clear()
    PluginHost(pm, diagnostics=lambda *a: None).diagnostic("warn", "delivery_dropped", {})
    assert [r for r in caplog.records if r.name == DIAGNOSTICS_LOGGER_NAME] == []


def test_diagnostics_file_gets_one_json_line_per_event(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "diag.jsonl"
    monkeypatch.setenv("INGRESS_LOGGING_DIAGNOSTICS_FILE", str(path))
    host = PluginHost(pm, diagnostics=lambda *a: None)
    host.diagnostic("error", SESSION_PERSIST_FAIL_STATUS, {"status": 500, "attempt": 3})
    host.diagnostic("debug", "delivery_gap_written", {"count": 1})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["level"], x["event"], x["data"]) for x in lines] == [
        ("error", SESSION_PERSIST_FAIL_STATUS, {"status": 500, "attempt": 3}),
        ("debug", "delivery_gap_written", {"count": 1}),
    ]
    stamp = datetime.datetime.fromisoformat(lines[0]["timestamp"])
    assert stamp.tzinfo is not None
    assert abs(datetime.datetime.now(datetime.UTC) - stamp) < datetime.timedelta(minutes=5)


def test_an_unwritable_diagnostics_file_is_a_counted_sink_failure(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_DIAGNOSTICS_FILE", str(tmp_path / "missing-dir" / "d"))
    host = PluginHost(pm, diagnostics=lambda *a: None)
    host.diagnostic("info", "delivery_dropped", {"count": 1})
    assert host.sink_failures == 1


# --- prepare_entry ----------------------------------------------------------


class AddKey:
    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any], record: object) -> dict[str, Any]:
        self.seen.append(dict(entry))
        return {**entry, self.key: True}


class Leave:
    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any], record: object) -> None:
        entry["touched"] = True  # in-place edits count even when returning None


class Dropper:
    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any], record: object) -> object:
        return DROP


class Raiser:
    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any], record: object) -> None:
        raise KeyError(entry["secret"])  # the message would quote the secret


class WrongType:
    @hookimpl
    def ingress_prepare_entry(self, entry: dict[str, Any], record: object) -> object:
        return ["not", "a", "dict"]


def test_prepare_entry_chains_in_call_order(pm: pluggy.PluginManager) -> None:
    first_registered, second_registered = AddKey("a"), AddKey("b")
    pm.register(first_registered)
    pm.register(Leave())
    pm.register(second_registered)
    record = object()
    out = PluginHost(pm).prepare_entry({"type": "x"}, record)
    assert out == {"type": "x", "b": True, "touched": True, "a": True}
    # Newest first: "b" ran on the raw entry, "a" saw b's output and Leave's edit.
    assert second_registered.seen == [{"type": "x"}]
    assert first_registered.seen == [{"type": "x", "b": True, "touched": True}]


def test_no_plugins_leaves_the_entry_alone(pm: pluggy.PluginManager) -> None:
    entry = {"type": "x", "message": "hi"}
    assert PluginHost(pm).prepare_entry(entry, None) == {"type": "x", "message": "hi"}


def test_drop_verdict_drops_and_counts(pm: pluggy.PluginManager) -> None:
    later = AddKey("never")
    pm.register(later)
    pm.register(Dropper())
    host = PluginHost(pm)
    assert host.prepare_entry({"type": "x"}, None) is None
    assert host.prepare_drops == 1
    assert later.seen == []


def test_a_raising_prepare_plugin_fails_closed(
    pm: pluggy.PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    pm.register(Raiser(), name="raiser")
    events: list[Event] = []
    host = PluginHost(pm, diagnostics=lambda lvl, ev, d: events.append((lvl, ev, dict(d))))
    assert host.prepare_entry({"secret": "hunter2-secret"}, None) is None
    assert host.prepare_failures == 1
    assert events == [("error", PLUGIN_FAILED, {"plugin": "raiser", "count": 1})]
    assert "hunter2-secret" not in caplog.text
    assert "raiser" in caplog.text


def test_a_prepare_plugin_returning_a_non_dict_fails_closed(pm: pluggy.PluginManager) -> None:
    pm.register(WrongType(), name="wrong")
    host = PluginHost(pm, diagnostics=lambda *a: None)
    assert host.prepare_entry({"type": "x"}, None) is None
    assert host.prepare_failures == 1
