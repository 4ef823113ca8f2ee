"""Log records and spans from the real SDK -> entry dicts (pure conversion)."""

from __future__ import annotations

import base64
import datetime
import math
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from ingress_logging.entries import Limits
from ingress_logging.otel._convert import (
    iso_from_ns,
    iso_ms_from_ns,
    log_record_session_id,
    log_to_entry,
    span_session_id,
    span_to_entry,
)

T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


def _parse(iso: str) -> datetime.datetime:
    assert iso.endswith("Z")
    return datetime.datetime.fromisoformat(iso)


def test_iso_from_ns_is_utc_with_microseconds() -> None:
    assert iso_from_ns(T0) == "2023-11-14T22:13:20.123456Z"
    assert iso_ms_from_ns(T0) == "2023-11-14T22:13:20.123Z"
    assert iso_from_ns(0) == "1970-01-01T00:00:00.000000Z"
    assert _parse(iso_from_ns(T0)).timestamp() == pytest.approx(T0 / 1e9, abs=1e-6)


def _readable(**kwargs: Any) -> ReadableLogRecord:
    resource = kwargs.pop("resource", Resource({"service.name": "svc"}))
    scope = kwargs.pop("scope", InstrumentationScope("my.lib", "2.1"))
    return ReadableLogRecord(LogRecord(**kwargs), resource=resource, instrumentation_scope=scope)


def test_log_record_maps_every_field() -> None:
    record = _readable(
        timestamp=T0,
        observed_timestamp=T0 + 5_000,
        severity_text="WARNING",
        severity_number=SeverityNumber.WARN,
        body={"msg": "hello", "raw": b"\x01\x02", "nested": [1, 2.5, {"deep": None}]},
        attributes={"user": "u1", "count": 3, "ratio": 0.5, "ok": True, "tags": ("a", "b")},
        event_name="my.event",
        resource=Resource({"service.name": "svc", "host.id": 7}),
    )
    entry = log_to_entry(record)
    assert entry["type"] == "otel_log"
    assert entry["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert entry["observed_timestamp"] == iso_from_ns(T0 + 5_000)
    assert entry["severity"] == {"text": "WARNING", "number": 13}
    assert entry["body"] == {
        "msg": "hello",
        "raw": base64.b64encode(b"\x01\x02").decode(),
        "nested": [1, 2.5, {"deep": None}],
    }
    assert entry["attributes"] == {
        "user": "u1",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "tags": ["a", "b"],
    }
    assert entry["event_name"] == "my.event"
    assert entry["scope"] == {"name": "my.lib", "version": "2.1"}
    assert entry["resource"] == {"service.name": "svc", "host.id": 7}
    # No span was active: no ids at all rather than zeros.
    assert "trace_id" not in entry
    assert "serializationIssues" not in entry
    assert "truncated" not in entry
    # uuid / parentUuid / sessionId are the engine's job.
    assert not {"uuid", "parentUuid", "sessionId"} & entry.keys()
    assert orjson.loads(orjson.dumps(entry)) == entry


def test_log_record_without_timestamp_uses_observed_and_number_name() -> None:
    entry = log_to_entry(
        _readable(observed_timestamp=T0, severity_number=SeverityNumber.ERROR2, body="x")
    )
    assert entry["timestamp"] == iso_ms_from_ns(T0)
    assert entry["severity"] == {"text": "ERROR2", "number": 18}
    assert entry["body"] == "x"


def test_log_record_with_no_severity_and_no_body() -> None:
    entry = log_to_entry(_readable(observed_timestamp=T0))
    assert entry["severity"] == {"text": None, "number": None}
    assert entry["body"] is None
    assert entry["attributes"] == {}


def test_log_record_inside_a_span_carries_its_ids() -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        record = _readable(body="in span")  # LogRecord reads the current context
        ctx = span.get_span_context()
    entry = log_to_entry(record)
    assert entry["trace_id"] == format(ctx.trace_id, "032x")
    assert entry["span_id"] == format(ctx.span_id, "016x")
    assert len(entry["trace_id"]) == 32
    assert len(entry["span_id"]) == 16
    assert entry["trace_flags"] == int(ctx.trace_flags)


def test_records_from_a_real_logger_provider() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource({"session.id": "res-session"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("lib.name", "0.9")
    logger.emit(body="one", attributes={"session.id": "attr-session"})
    logger.emit(body="two", severity_number=SeverityNumber.INFO)
    provider.shutdown()
    first, second = exporter.get_finished_logs()
    e1, e2 = log_to_entry(first), log_to_entry(second)
    assert e1["body"] == "one"
    assert e1["scope"] == {"name": "lib.name", "version": "0.9"}
    assert e1["resource"]["session.id"] == "res-session"
    assert e2["severity"]["number"] == SeverityNumber.INFO.value
    assert log_record_session_id(first, "default") == "attr-session"
    assert log_record_session_id(second, "default") == "res-session"


def test_session_id_precedence_for_logs() -> None:
    no_resource_session = Resource({"service.name": "s"})
    plain = _readable(body="x", resource=no_resource_session)
    assert log_record_session_id(plain, "dflt") == "dflt"
    assert log_record_session_id(plain, None) is None
    with_res = _readable(body="x", resource=Resource({"session.id": "r"}))
    assert log_record_session_id(with_res, "dflt") == "r"
    both = _readable(
        body="x", attributes={"session.id": "a"}, resource=Resource({"session.id": "r"})
    )
    assert log_record_session_id(both, "dflt") == "a"
    # A non-string or empty session.id is not a session id: fall through.
    odd = _readable(body="x", attributes={"session.id": 5}, resource=no_resource_session)
    assert log_record_session_id(odd, "dflt") == "dflt"


@dataclass
class _OldSdkLogRecord:
    """The pre-1.39 shape: the SDK LogRecord carried its own resource."""

    timestamp: int | None
    observed_timestamp: int
    trace_id: int
    span_id: int
    trace_flags: int
    severity_text: str | None
    severity_number: SeverityNumber | None
    body: object
    attributes: dict[str, object]
    resource: Resource


@dataclass
class _OldLogData:
    log_record: _OldSdkLogRecord
    instrumentation_scope: InstrumentationScope | None


def test_older_logdata_shape_is_read_too() -> None:
    old = _OldLogData(
        _OldSdkLogRecord(
            timestamp=T0,
            observed_timestamp=T0,
            trace_id=0xABC,
            span_id=0xDEF,
            trace_flags=1,
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            body="old",
            attributes={"k": "v"},
            resource=Resource({"session.id": "from-resource"}),
        ),
        InstrumentationScope("old.lib"),
    )
    entry = log_to_entry(old)
    assert entry["body"] == "old"
    assert entry["trace_id"] == "0" * 29 + "abc"
    assert entry["span_id"] == "0" * 13 + "def"
    assert entry["resource"] == {"session.id": "from-resource"}
    assert entry["scope"] == {"name": "old.lib", "version": None}
    assert "event_name" not in entry
    assert log_record_session_id(old, None) == "from-resource"


def test_long_body_is_cut_to_the_message_limit() -> None:
    entry = log_to_entry(
        _readable(body="b" * 50, attributes={"a": "c" * 50}),
        Limits(max_message_length=40, max_string_length=10),
    )
    assert entry["body"] == "b" * 40
    assert entry["attributes"] == {"a": "c" * 10}
    assert entry["truncated"] == {"body": 50, "attributes.a": 50}


def test_lossy_body_is_flagged_not_lost() -> None:
    class Obj:
        def __repr__(self) -> str:
            return "Obj()"

    entry = log_to_entry(_readable(body={"o": Obj(), "fine": 1}))
    assert entry["body"] == {"o": "Obj()", "fine": 1}
    assert entry["serializationIssues"] == [{"path": "body.o", "reason": "unserializable"}]


def _finished_spans(build: Any, resource: Resource | None = None) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource or Resource({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tracer.lib", "3.0"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_span_maps_every_field() -> None:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("outer") as outer:
            linked = outer.get_span_context()
        with tracer.start_as_current_span("parent"):
            span = tracer.start_span(
                "child",
                kind=SpanKind.CLIENT,
                attributes={"http.method": "GET", "sizes": [1, 2], "f": 1.5, "b": False},
                links=[Link(linked, {"why": "retry"})],
                start_time=T0,
            )
            span.add_event("cache miss", {"key": "k1"}, timestamp=T0 + 1_000_000)
            span.set_status(Status(StatusCode.ERROR, "boom"))
            span.end(end_time=T0 + 2_500_000)

    outer, child, parent = _finished_spans(build)
    entry = span_to_entry(child)
    assert entry["type"] == "otel_span"
    assert entry["name"] == "child"
    assert entry["kind"] == "CLIENT"
    assert entry["status"] == {"code": "ERROR", "description": "boom"}
    assert entry["start_time"] == iso_from_ns(T0)
    assert entry["end_time"] == iso_from_ns(T0 + 2_500_000)
    assert entry["timestamp"] == iso_ms_from_ns(T0 + 2_500_000)
    assert entry["duration_ms"] == 2.5
    assert entry["trace_id"] == format(child.context.trace_id, "032x")
    assert entry["span_id"] == format(child.context.span_id, "016x")
    assert entry["parent_span_id"] == format(parent.context.span_id, "016x")
    assert entry["trace_id"] == format(parent.context.trace_id, "032x")
    assert entry["attributes"] == {"http.method": "GET", "sizes": [1, 2], "f": 1.5, "b": False}
    assert entry["events"] == [
        {
            "name": "cache miss",
            "timestamp": iso_from_ns(T0 + 1_000_000),
            "attributes": {"key": "k1"},
        }
    ]
    assert entry["links"] == [
        {
            "trace_id": format(outer.context.trace_id, "032x"),
            "span_id": format(outer.context.span_id, "016x"),
            "attributes": {"why": "retry"},
        }
    ]
    assert entry["scope"] == {"name": "tracer.lib", "version": "3.0"}
    assert entry["resource"] == {"service.name": "svc"}
    assert orjson.loads(orjson.dumps(entry)) == entry

    root = span_to_entry(parent)
    assert root["parent_span_id"] is None
    assert root["kind"] == "INTERNAL"
    assert root["status"] == {"code": "UNSET", "description": None}
    assert root["events"] == []
    assert root["links"] == []


def test_span_session_id_precedence() -> None:
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("a", attributes={"session.id": "from-span"}):
            pass
        with tracer.start_as_current_span("b"):
            pass

    a, b = _finished_spans(build, Resource({"session.id": "from-resource"}))
    assert span_session_id(a, "dflt") == "from-span"
    assert span_session_id(b, "dflt") == "from-resource"
    (c,) = _finished_spans(lambda t: t.start_span("c").end())
    assert span_session_id(c, "dflt") == "dflt"


def test_exception_and_stdlib_records_arrive_as_attributes() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    try:
        raise ValueError("boom")
    except ValueError as exc:
        provider.get_logger("lib").emit(body="failed", exception=exc)
    provider.shutdown()
    (record,) = exporter.get_finished_logs()
    attributes = log_to_entry(record)["attributes"]
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "boom"
    assert "Traceback" in attributes["exception.stacktrace"]


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
_any_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(
    body=_any_values,
    attributes=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k != "session.id"),
        _any_values,
        max_size=5,
    ),
)
def test_any_record_from_the_real_sdk_becomes_a_json_entry(body, attributes) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("prop").emit(body=body, attributes=attributes)
    (record,) = exporter.get_finished_logs()
    entry = log_to_entry(record)
    assert orjson.loads(orjson.dumps(entry)) == entry
    assert "serializationIssues" not in entry
    if isinstance(body, bytes):
        assert base64.b64decode(entry["body"]) == body
    elif isinstance(body, float) and not math.isfinite(body):
        # JSON has no NaN/Infinity: they travel as the strings JavaScript prints.
        expected = "NaN" if math.isnan(body) else ("Infinity" if body > 0 else "-Infinity")
        assert entry["body"] == expected
    elif not isinstance(body, list | dict):
        assert entry["body"] == body
    assert set(entry["attributes"]) == set(record.log_record.attributes or {})
