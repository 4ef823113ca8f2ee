"""OpenTelemetry log records and spans -> transcript entry dicts (pure functions).

The entry shapes are documented in ``docs/opentelemetry.md`` (the mapping
table); in short::

    {"type": "otel_log", "timestamp": ISO (ms), "severity": {"text", "number"},
     "body": ..., "attributes": {...}, "trace_id": 32 hex, "span_id": 16 hex,
     "scope": {"name", "version"}, "resource": {...}}

    {"type": "otel_span", "timestamp": ISO (end), "name", "kind",
     "status": {"code", "description"}, "start_time", "end_time", "duration_ms",
     "trace_id", "span_id", "parent_span_id", "attributes", "events", "links",
     "scope", "resource"}

``uuid``, ``parentUuid`` and ``sessionId`` are left to the delivery engine,
which assigns them on its worker in per-session order (so the stdlib handler
and these exporters build one chain per session).

Both the SDK >= 1.39 shape (``ReadableLogRecord``: ``log_record``,
``resource``, ``instrumentation_scope``) and the older ``LogData`` shape
(``log_record`` carrying its own ``resource``) are read, by attribute, so no
SDK-internal import is needed here.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

from ..entries import DEFAULT_LIMITS, Limits
from ._values import JSONValue, ValueConverter

__all__ = [
    "LOG_ENTRY_TYPE",
    "SESSION_ID_ATTRIBUTE",
    "SPAN_ENTRY_TYPE",
    "iso_from_ns",
    "iso_ms_from_ns",
    "log_record_session_id",
    "log_to_entry",
    "span_session_id",
    "span_to_entry",
]

LOG_ENTRY_TYPE: Final = "otel_log"
SPAN_ENTRY_TYPE: Final = "otel_span"
#: The attribute (on the record/span, else on the resource) naming the session.
SESSION_ID_ATTRIBUTE: Final = "session.id"

_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def iso_from_ns(ns: int) -> str:
    """Nanoseconds since the epoch -> ISO 8601 UTC with microseconds and ``Z``.

    Microseconds are what :mod:`datetime` can hold; the exact nanosecond
    durations that matter are computed from the integers (``duration_ms``).
    """
    moment = _EPOCH + datetime.timedelta(microseconds=ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_ms_from_ns(ns: int) -> str:
    """Like :func:`iso_from_ns` with milliseconds: the transcript ``timestamp`` shape.

    Every entry's ``timestamp`` has this shape (``2026-01-02T03:04:05.678Z``,
    JavaScript's ``toISOString``), the same as the stdlib handler's entries.
    """
    return iso_from_ns(ns)[:23] + "Z"


def _trace_id(value: int | None) -> str | None:
    return format(value, "032x") if value else None  # 0 is the invalid id


def _span_id(value: int | None) -> str | None:
    return format(value, "016x") if value else None


def _scope(scope: Any, conv: ValueConverter) -> dict[str, JSONValue] | None:
    if scope is None:
        return None
    out: dict[str, JSONValue] = {
        "name": conv.value(scope.name, "scope.name"),
        "version": conv.value(scope.version, "scope.version"),
    }
    if getattr(scope, "schema_url", ""):
        out["schema_url"] = scope.schema_url
    attributes = getattr(scope, "attributes", None)
    if attributes:
        out["attributes"] = conv.attributes(attributes, "scope.attributes")
    return out


def _resource(resource: Any, conv: ValueConverter) -> dict[str, JSONValue] | None:
    if resource is None:
        return None
    return conv.attributes(resource.attributes, "resource")


def _session_attr(attributes: Mapping[str, object] | None) -> str | None:
    if not attributes:
        return None
    value = attributes.get(SESSION_ID_ATTRIBUTE)
    return value if isinstance(value, str) and value else None


def _log_parts(item: Any) -> tuple[Any, Any, Any]:
    """(log_record, resource, scope) from a ReadableLogRecord or a LogData."""
    record = getattr(item, "log_record", item)
    resource = getattr(item, "resource", None)
    if resource is None:
        resource = getattr(record, "resource", None)
    return record, resource, getattr(item, "instrumentation_scope", None)


def log_record_session_id(item: Any, default: str | None) -> str | None:
    """Record attribute ``session.id`` > resource attribute ``session.id`` > ``default``."""
    record, resource, _ = _log_parts(item)
    return (
        _session_attr(record.attributes)
        or _session_attr(getattr(resource, "attributes", None))
        or default
    )


def span_session_id(span: Any, default: str | None) -> str | None:
    """Span attribute ``session.id`` > resource attribute ``session.id`` > ``default``."""
    return (
        _session_attr(span.attributes)
        or _session_attr(getattr(span.resource, "attributes", None))
        or default
    )


def log_to_entry(item: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """One OpenTelemetry log record (ReadableLogRecord or LogData) -> entry dict.

    A string body is cut to ``limits.max_message_length``, other strings to
    ``max_string_length``; what was cut or replaced is flagged in the entry.
    """
    record, resource, scope = _log_parts(item)
    conv = ValueConverter(limits)
    observed = record.observed_timestamp
    when = record.timestamp or observed
    number = record.severity_number
    text = record.severity_text
    if text is None and number is not None:
        text = number.name  # e.g. "WARN": the level a reader looks for
    entry: dict[str, Any] = {
        "type": LOG_ENTRY_TYPE,
        "timestamp": iso_ms_from_ns(when) if when else None,
        "observed_timestamp": iso_from_ns(observed) if observed else None,
        "severity": {
            "text": conv.value(text, "severity.text"),
            "number": None if number is None else int(number.value),
        },
        "body": conv.value(record.body, "body", string_limit=limits.max_message_length),
        "attributes": conv.attributes(record.attributes, "attributes"),
    }
    event_name = getattr(record, "event_name", None)
    if event_name:
        entry["event_name"] = conv.value(event_name, "event_name")
    trace_id = _trace_id(record.trace_id)
    if trace_id is not None:
        entry["trace_id"] = trace_id
        entry["span_id"] = _span_id(record.span_id)
        entry["trace_flags"] = int(record.trace_flags or 0)
    dropped = getattr(item, "dropped_attributes", 0) or getattr(record, "dropped_attributes", 0)
    if isinstance(dropped, int) and dropped:
        entry["dropped_attributes"] = dropped
    entry["scope"] = _scope(scope, conv)
    entry["resource"] = _resource(resource, conv)
    return conv.annotate(entry)


def _event(event: Any, path: str, conv: ValueConverter) -> dict[str, JSONValue]:
    return {
        "name": conv.value(event.name, f"{path}.name"),
        "timestamp": iso_from_ns(event.timestamp),
        "attributes": conv.attributes(event.attributes, f"{path}.attributes"),
    }


def _link(link: Any, path: str, conv: ValueConverter) -> dict[str, JSONValue]:
    return {
        "trace_id": _trace_id(link.context.trace_id),
        "span_id": _span_id(link.context.span_id),
        "attributes": conv.attributes(link.attributes, f"{path}.attributes"),
    }


def span_to_entry(span: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """One finished ``ReadableSpan`` -> entry dict (``timestamp``: the span's end)."""
    conv = ValueConverter(limits)
    start: int | None = span.start_time
    end: int | None = span.end_time
    context = span.context
    parent = span.parent
    status = span.status
    when = end or start
    entry: dict[str, Any] = {
        "type": SPAN_ENTRY_TYPE,
        "timestamp": iso_ms_from_ns(when) if when else None,
        "name": conv.value(span.name, "name"),
        "kind": span.kind.name,
        "status": {
            "code": status.status_code.name,
            "description": conv.value(status.description, "status.description"),
        },
        "start_time": iso_from_ns(start) if start else None,
        "end_time": iso_from_ns(end) if end else None,
        "duration_ms": (end - start) / 1e6 if start and end else None,
        "trace_id": _trace_id(context.trace_id),
        "span_id": _span_id(context.span_id),
        "parent_span_id": _span_id(parent.span_id) if parent is not None else None,
        "trace_flags": int(context.trace_flags),
        "attributes": conv.attributes(span.attributes, "attributes"),
        "events": [_event(e, f"events[{i}]", conv) for i, e in enumerate(span.events)],
        "links": [_link(link, f"links[{i}]", conv) for i, link in enumerate(span.links)],
    }
    if parent is not None and parent.is_remote:
        entry["parent_is_remote"] = True
    for name in ("dropped_attributes", "dropped_events", "dropped_links"):
        count = getattr(span, name, 0)
        if isinstance(count, int) and count:
            entry[name] = count
    entry["scope"] = _scope(span.instrumentation_scope, conv)
    entry["resource"] = _resource(span.resource, conv)
    return conv.annotate(entry)
