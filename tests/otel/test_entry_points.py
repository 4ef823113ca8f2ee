"""The public surface: names, entry points, SDK base classes."""

from __future__ import annotations

from importlib.metadata import entry_points

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.trace.export import SpanExporter

import ingress_logging.otel as otel
from ingress_logging.otel import IngressLogExporter, IngressSpanExporter


def test_exported_names() -> None:
    assert sorted(otel.__all__) == [
        "IngressLogExporter",
        "IngressSpanExporter",
        "LOG_ENTRY_TYPE",
        "SESSION_ID_ATTRIBUTE",
        "SPAN_ENTRY_TYPE",
        "log_to_entry",
        "span_to_entry",
    ]
    assert (otel.LOG_ENTRY_TYPE, otel.SPAN_ENTRY_TYPE) == ("otel_log", "otel_span")
    assert otel.SESSION_ID_ATTRIBUTE == "session.id"


def test_registered_under_the_ingress_name_in_both_groups() -> None:
    (logs,) = entry_points(group="opentelemetry_logs_exporter", name="ingress")
    (traces,) = entry_points(group="opentelemetry_traces_exporter", name="ingress")
    assert logs.load() is IngressLogExporter
    assert traces.load() is IngressSpanExporter
    # The SDK's configurator checks exactly this before building them.
    assert issubclass(IngressLogExporter, LogRecordExporter)
    assert issubclass(IngressSpanExporter, SpanExporter)
