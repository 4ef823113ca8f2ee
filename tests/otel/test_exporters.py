"""The exporters end to end: the real SDK pipelines against the local server.

Providers are used directly (never ``set_logger_provider``/``set_tracer_provider``:
those can be set once per process); the global auto-configuration path runs
in subprocesses (test_autoconfig.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode

from ingress_logging import IngressHandler
from ingress_logging.errors import ConfigError
from ingress_logging.hookspecs import hookimpl
from ingress_logging.otel import IngressLogExporter, IngressSpanExporter
from ingress_logging.plugins import new_plugin_manager


def _exporter(server: Any, options: dict[str, Any], **kwargs: Any) -> IngressLogExporter:
    kwargs.setdefault("session_id", "s-default")
    return IngressLogExporter(base_api_url=server.base_url, token=server.token, **options, **kwargs)


def _record(body: object = "x", **kwargs: Any) -> ReadableLogRecord:
    resource = kwargs.pop("resource", Resource({"service.name": "t"}))
    return ReadableLogRecord(
        LogRecord(body=body, **kwargs),
        resource=resource,
        instrumentation_scope=InstrumentationScope("app"),
    )


def _assert_chain(entries: list[dict[str, Any]], session_id: str) -> None:
    previous = None
    for entry in entries:
        assert entry["sessionId"] == session_id
        assert entry["parentUuid"] == previous
        previous = entry["uuid"]


def test_log_pipeline_delivers_every_record_in_order(ingress_server, fast_engine_options):
    exporter = _exporter(ingress_server, fast_engine_options, session_id="logs-1")
    provider = LoggerProvider(resource=Resource({"service.name": "checkout"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=10))
    logger = provider.get_logger("app.module", "1.2")
    bodies: list[object] = [f"message {i}" for i in range(20)]
    bodies += [{"k": [1, 2.5, True, None]}, b"\x00\x01", 7, ["a", {"b": "c"}]]
    for i, body in enumerate(bodies):
        logger.emit(
            body=body, severity_number=SeverityNumber.INFO, attributes={"i": i, "tags": ("x",)}
        )
    provider.force_flush()
    assert exporter.force_flush(10_000) is True
    entries = ingress_server.entries("logs-1")
    assert [e["attributes"]["i"] for e in entries] == list(range(len(bodies)))
    assert all(e["type"] == "otel_log" for e in entries)
    assert entries[0]["body"] == "message 0"
    assert entries[20]["body"] == {"k": [1, 2.5, True, None]}
    assert entries[21]["body"] == "AAE="
    assert entries[22]["body"] == 7
    assert entries[23]["body"] == ["a", {"b": "c"}]
    assert entries[0]["attributes"]["tags"] == ["x"]
    assert entries[0]["scope"] == {"name": "app.module", "version": "1.2"}
    assert entries[0]["resource"]["service.name"] == "checkout"
    assert entries[0]["severity"] == {"text": "INFO", "number": 9}
    _assert_chain(entries, "logs-1")
    provider.shutdown()
    assert exporter.last_flush_result


def test_span_pipeline_delivers_each_finished_span(ingress_server, fast_engine_options):
    exporter = IngressSpanExporter(
        base_api_url=ingress_server.base_url,
        token=ingress_server.token,
        session_id="spans-1",
        **fast_engine_options,
    )
    provider = TracerProvider(resource=Resource({"service.name": "api"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=10))
    tracer = provider.get_tracer("web")
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("db", attributes={"db.rows": 3}) as child:
            child.add_event("query sent", {"sql.len": 42})
            child.set_status(Status(StatusCode.ERROR, "deadlock"))
        root.set_attribute("http.status_code", 500)
    provider.force_flush()
    assert exporter.force_flush(10_000) is True
    entries = ingress_server.entries("spans-1")
    assert [e["name"] for e in entries] == ["db", "request"]  # spans end inner first
    db, request = entries
    assert db["type"] == request["type"] == "otel_span"
    assert db["parent_span_id"] == request["span_id"]
    assert db["trace_id"] == request["trace_id"]
    assert request["parent_span_id"] is None
    assert request["kind"] == "SERVER"
    assert request["attributes"] == {"http.status_code": 500}
    assert db["status"] == {"code": "ERROR", "description": "deadlock"}
    assert db["events"][0]["name"] == "query sent"
    assert db["events"][0]["attributes"] == {"sql.len": 42}
    assert 0 <= db["duration_ms"] <= request["duration_ms"]
    _assert_chain(entries, "spans-1")
    provider.shutdown()


def test_session_id_comes_from_record_then_resource_then_default(
    ingress_server, fast_engine_options
):
    exporter = _exporter(ingress_server, fast_engine_options, session_id="dflt")
    batch = [
        _record("to-attr", attributes={"session.id": "from-attr"}),
        _record("to-resource", resource=Resource({"session.id": "from-resource"})),
        _record(
            "attr-wins",
            attributes={"session.id": "from-attr"},
            resource=Resource({"session.id": "from-resource"}),
        ),
        _record("to-default"),
    ]
    assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    assert exporter.force_flush(10_000)
    assert [e["body"] for e in ingress_server.entries("from-attr")] == ["to-attr", "attr-wins"]
    assert [e["body"] for e in ingress_server.entries("from-resource")] == ["to-resource"]
    assert [e["body"] for e in ingress_server.entries("dflt")] == ["to-default"]


def test_records_without_a_usable_session_are_refused_and_counted(
    ingress_server, fast_engine_options
):
    exporter = _exporter(ingress_server, fast_engine_options, session_id=None)
    batch = [
        _record("no session"),
        _record("bad session", attributes={"session.id": "../etc/passwd"}),
        _record("good", attributes={"session.id": "fine"}),
    ]
    assert exporter.export(batch) is LogRecordExportResult.FAILURE
    assert exporter.dropped() == {"no_session_id": 1, "invalid_session_id": 1}
    assert exporter.force_flush(10_000)
    assert [e["body"] for e in ingress_server.entries("fine")] == ["good"]
    assert [r.method for r in ingress_server.requests if r.method == "PUT"] == ["PUT"]


def test_export_after_shutdown_fails_and_sends_nothing(ingress_server, fast_engine_options):
    exporter = _exporter(ingress_server, fast_engine_options, session_id="late")
    exporter.shutdown()
    assert exporter.export([_record("too late")]) is LogRecordExportResult.FAILURE
    assert exporter.dropped() == {"exporter_shut_down": 1}
    exporter.shutdown()  # a second call is harmless
    assert ingress_server.entries("late") == []


def test_shutdown_with_server_down_returns_in_time_and_reports_failure(ingress_server_factory):
    from ingress_logging.protocol import RetryPolicy

    server = ingress_server_factory()
    base_url, token = server.base_url, server.token
    server.close()  # nothing listens on that port any more
    # Backoff long enough that delivery cannot fail for good within the timeouts.
    options = {"retry_policy": RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=1.0)}
    exporter = IngressLogExporter(
        base_api_url=base_url, token=token, session_id="down", shutdown_timeout=0.3, **options
    )
    try:
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        provider.get_logger("app").emit(body="lost?")
        started = time.monotonic()
        provider.shutdown()  # the processor offers the exporter ~30 s; it takes 0.3
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 1.5
        result = exporter.last_flush_result
        assert not result
        assert result.timed_out
        assert result.pending == 1

        # An explicit, shorter timeout wins over shutdown_timeout.
        exporter2 = IngressSpanExporter(
            base_api_url=base_url, token=token, session_id="down2", **options
        )
        provider2 = TracerProvider(shutdown_on_exit=False)
        provider2.add_span_processor(SimpleSpanProcessor(exporter2))
        provider2.get_tracer("t").start_span("x").end()
        started = time.monotonic()
        assert exporter2.shutdown(timeout_millis=200) is False
        assert time.monotonic() - started < 1.0
        assert not exporter2.last_flush_result
        assert exporter2.shutdown() is False  # a second call repeats the answer
        assert exporter2.force_flush(50) is False
    finally:
        # These engines point at a dead port and are no one else's: stop them now,
        # so their retries do not hold up the interpreter's exit.
        exporter.engine.close(0)


def test_shutdown_returns_whether_everything_was_delivered(ingress_server, fast_engine_options):
    """shutdown() answers like force_flush(): True once all is stored, False on a failure."""
    settings = {"base_api_url": ingress_server.base_url, **fast_engine_options}
    logs = IngressLogExporter(token=ingress_server.token, session_id="shut-ok", **settings)
    spans = IngressSpanExporter(token=ingress_server.token, session_id="shut-ok", **settings)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    provider.get_tracer("t").start_span("stored").end()
    assert logs.export([_record("stored too")]) is LogRecordExportResult.SUCCESS
    assert spans.shutdown() is True
    assert logs.shutdown() is True
    assert [e["type"] for e in ingress_server.entries("shut-ok")] == ["otel_span", "otel_log"]

    rejected = IngressLogExporter(token="not-the-servers-token", session_id="shut-no", **settings)
    assert rejected.export([_record("refused by the server")]) is LogRecordExportResult.SUCCESS
    assert rejected.shutdown() is False
    assert ingress_server.entries("shut-no") == []


@pytest.mark.parametrize("exporter_class", [IngressLogExporter, IngressSpanExporter])
def test_an_unusable_url_variable_is_refused_when_the_exporter_is_built(
    ingress_server, monkeypatch, exporter_class
):
    """A bare base URL in INGRESS_LOGGING_URL: a clear error now, not failed deliveries later."""
    monkeypatch.setenv("INGRESS_LOGGING_URL", ingress_server.base_url)
    with pytest.raises(ConfigError, match=r"INGRESS_LOGGING_URL.*session_id"):
        exporter_class(token=ingress_server.token, session_id="s")
    # Arguments win over the variable, so it is not in use then.
    exporter_class(base_api_url=ingress_server.base_url, session_id="s")
    template = ingress_server.base_url + "/v1/session_ingress/session/{session_id}"
    monkeypatch.setenv("INGRESS_LOGGING_URL", template)
    exporter_class(session_id="s")


def test_force_flush_is_false_when_delivery_fails(ingress_server, fast_engine_options):
    exporter = IngressLogExporter(
        base_api_url=ingress_server.base_url,
        token="not-the-servers-token",
        session_id="rejected",
        **fast_engine_options,
    )
    assert exporter.export([_record("x")]) is LogRecordExportResult.SUCCESS
    assert exporter.force_flush(10_000) is False
    assert exporter.last_flush_result.failed == 1
    assert ingress_server.entries("rejected") == []


def test_stdlib_handler_and_otel_exporter_share_one_engine_and_one_chain(
    ingress_server, fast_engine_options
):
    settings = {"base_api_url": ingress_server.base_url, "token": ingress_server.token}
    handler = IngressHandler(session_id="shared", **settings)
    exporter = IngressLogExporter(session_id="shared", **settings)
    assert handler.engine is exporter.engine
    stdlib_logger = logging.getLogger("tests.otel.shared")
    stdlib_logger.propagate = False
    stdlib_logger.setLevel(logging.INFO)
    stdlib_logger.addHandler(handler)
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    otel_logger = provider.get_logger("otel.side")
    try:
        stdlib_logger.info("first, from logging")
        otel_logger.emit(body="second, from OpenTelemetry")
        stdlib_logger.info("third, from logging")
        assert exporter.force_flush(10_000)
    finally:
        stdlib_logger.removeHandler(handler)
        handler.close()
    entries = ingress_server.entries("shared")
    assert [e["type"] for e in entries] == ["system", "otel_log", "system"]
    assert [e.get("content", e.get("body")) for e in entries] == [
        "first, from logging",
        "second, from OpenTelemetry",
        "third, from logging",
    ]
    _assert_chain(entries, "shared")


def test_logs_inside_a_span_carry_its_ids_on_both_front_doors(ingress_server, fast_engine_options):
    settings = {
        "base_api_url": ingress_server.base_url,
        "token": ingress_server.token,
        "session_id": "corr",
    }
    handler = IngressHandler(**settings)
    log_exporter = IngressLogExporter(**settings)
    span_exporter = IngressSpanExporter(**settings)
    stdlib_logger = logging.getLogger("tests.otel.corr")
    stdlib_logger.propagate = False
    stdlib_logger.setLevel(logging.INFO)
    stdlib_logger.addHandler(handler)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("corr")
    try:
        with tracer.start_as_current_span("work") as span:
            ids = span.get_span_context()
            stdlib_logger.info("stdlib inside the span")
            logger_provider.get_logger("corr").emit(body="otel inside the span")
        stdlib_logger.info("stdlib after the span")
        assert span_exporter.force_flush(10_000)
    finally:
        stdlib_logger.removeHandler(handler)
        handler.close()
    trace_id, span_id = format(ids.trace_id, "032x"), format(ids.span_id, "016x")
    by_text = {
        e.get("content") or e.get("body") or e.get("name"): e
        for e in ingress_server.entries("corr")
    }
    for key in ("stdlib inside the span", "otel inside the span", "work"):
        assert by_text[key]["trace_id"] == trace_id
        assert by_text[key]["span_id"] == span_id
    assert "trace_id" not in by_text["stdlib after the span"]


def test_zero_argument_construction_reads_the_environment(
    ingress_server, fast_engine_options, monkeypatch, tmp_path
):
    token_file = tmp_path / "token"
    token_file.write_text(ingress_server.token + "\n")
    monkeypatch.setenv(
        "INGRESS_LOGGING_URL", ingress_server.base_url + "/v1/session_ingress/session/{session_id}"
    )
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("INGRESS_LOGGING_SESSION_ID", "from-env")
    exporter = IngressLogExporter()
    assert exporter.session_id == "from-env"
    assert exporter.export([_record("env configured")]) is LogRecordExportResult.SUCCESS
    assert exporter.force_flush(10_000)
    assert [e["body"] for e in ingress_server.entries("from-env")] == ["env configured"]
    assert ingress_server.token not in repr(exporter)


@pytest.mark.parametrize("bad", ["../up", "has space", ""])
def test_bad_session_id_setting_is_a_clear_config_error(bad, monkeypatch):
    if bad:
        with pytest.raises(ConfigError, match="session_id"):
            IngressLogExporter(session_id=bad)
    monkeypatch.setenv("INGRESS_LOGGING_SESSION_ID", bad or " ")
    if bad:
        with pytest.raises(ConfigError, match="INGRESS_LOGGING_SESSION_ID"):
            IngressSpanExporter()
    else:  # blank means unset
        monkeypatch.setenv("INGRESS_LOGGING_BASE_URL", "http://127.0.0.1:9")
        assert IngressSpanExporter().session_id is None


def test_no_url_anywhere_is_a_clear_config_error(monkeypatch):
    monkeypatch.delenv("INGRESS_LOGGING_URL", raising=False)
    monkeypatch.delenv("INGRESS_LOGGING_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"INGRESS_LOGGING_URL.*INGRESS_LOGGING_BASE_URL"):
        IngressLogExporter(session_id="s")


def test_a_misspelt_keyword_suggests_the_close_match():
    with pytest.raises(
        TypeError,
        match=r"IngressSpanExporter\(\) .*'max_concurency' "
        r"\(did you mean 'max_concurrency'\?\)",
    ):
        IngressSpanExporter(base_api_url="http://127.0.0.1:9", max_concurency=2)


def test_bad_shutdown_timeout_is_a_clear_config_error(monkeypatch):
    with pytest.raises(ConfigError, match="shutdown_timeout"):
        IngressLogExporter(shutdown_timeout=-1)
    monkeypatch.setenv("INGRESS_LOGGING_SHUTDOWN_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="INGRESS_LOGGING_SHUTDOWN_TIMEOUT"):
        IngressLogExporter()


def test_records_of_the_delivery_machinery_are_not_shipped(ingress_server, fast_engine_options):
    exporter = _exporter(ingress_server, fast_engine_options, session_id="loop")
    own = [
        ReadableLogRecord(
            LogRecord(body=name),
            resource=Resource({}),
            instrumentation_scope=InstrumentationScope(name),
        )
        for name in ("httpx", "httpcore.http11", "ingress_logging.delivery", "httpxish")
    ]
    assert exporter.export(own) is LogRecordExportResult.SUCCESS
    assert exporter.force_flush(10_000)
    assert [e["body"] for e in ingress_server.entries("loop")] == ["httpxish"]
    assert exporter.dropped() == {"ignored_scope": 3}


def test_export_does_not_wait_for_a_slow_server(ingress_server, fast_engine_options):
    ingress_server.faults.latency = 0.3  # every request takes 300 ms to answer
    exporter = _exporter(ingress_server, fast_engine_options, session_id="slow")
    batch = [_record(f"r{i}") for i in range(4)]
    started = time.monotonic()
    assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    export_took = time.monotonic() - started
    # Four sequential PUTs take at least 1.2 s; half of that leaves room for a
    # loaded CI machine without letting a blocking export pass.
    assert export_took < 0.6
    assert exporter.force_flush(20_000) is True
    assert [e["body"] for e in ingress_server.entries("slow")] == [f"r{i}" for i in range(4)]


def test_transient_failures_are_retried_and_still_succeed(ingress_server, fast_engine_options):
    ingress_server.faults.fail_next(2)  # two 503s, then the server recovers
    exporter = _exporter(ingress_server, fast_engine_options, session_id="flaky")
    assert exporter.export([_record("survives")]) is LogRecordExportResult.SUCCESS
    assert exporter.force_flush(10_000) is True
    assert [e["body"] for e in ingress_server.entries("flaky")] == ["survives"]
    assert exporter.engine.stats().sessions["flaky"].retried == 2


class _Events:
    """A diagnostics plugin that records every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    @hookimpl
    def ingress_diagnostic(self, level: str, event: str, data: Any) -> None:
        self.events.append((level, event, dict(data)))


def test_refusals_and_an_incomplete_shutdown_reach_the_diagnostics_plugins(
    ingress_server_factory,
):
    from ingress_logging.protocol import RetryPolicy

    server = ingress_server_factory()
    base_url, token = server.base_url, server.token
    server.close()
    sink = _Events()
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(sink)
    exporter = IngressLogExporter(
        base_api_url=base_url,
        token=token,
        plugins=pm,
        retry_policy=RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=1.0),
    )
    try:
        batch = [_record("no session")] * 3 + [_record("x", attributes={"session.id": "d"})]
        assert exporter.export(batch) is LogRecordExportResult.FAILURE
        exporter.shutdown(timeout_millis=100)
    finally:
        exporter.engine.close(0)
    drops = [data for _, event, data in sink.events if event == "delivery_dropped"]
    # Reported at the 1st and 2nd refusal (then the 4th, 8th...), not every one.
    assert drops[:2] == [
        {"count": 1, "reason": "no_session_id", "total": 1},
        {"count": 1, "reason": "no_session_id", "total": 2},
    ]
    (incomplete,) = [e for e in sink.events if e[1] == "otel_exporter_shutdown_incomplete"]
    assert incomplete == (
        "warn",
        "otel_exporter_shutdown_incomplete",
        {"failed": 0, "dropped": 0, "pending": 1},
    )
    assert all(token not in repr(e) for e in sink.events)


def test_a_token_callable_is_asked_per_request(ingress_server, fast_engine_options):
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return ingress_server.token

    exporter = IngressSpanExporter(
        base_api_url=ingress_server.base_url, token=token, session_id="cb", **fast_engine_options
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("a").end()
    provider.get_tracer("t").start_span("b").end()
    assert exporter.force_flush(10_000)
    assert [e["name"] for e in ingress_server.entries("cb")] == ["a", "b"]
    assert len(calls) >= 2
