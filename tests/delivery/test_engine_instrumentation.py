"""The engine's own requests are invisible to OpenTelemetry instrumentation.

Without suppression, an instrumented httpx client plus ``IngressSpanExporter``
would turn each delivery into a span, each span into a delivery, forever.
"""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def test_worker_requests_create_no_spans(make_engine: Any, ingress_server: Any) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    client = httpx.Client()
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    try:
        # Control: the same client, used from this thread, is instrumented.
        client.get(ingress_server.session_url("probe"))
        assert len(spans.get_finished_spans()) == 1

        engine = make_engine(http_client=client)
        for n in range(3):
            assert engine.submit("traced", {"type": "log", "n": n})
        result = engine.flush(5.0)
        assert result.delivered == 3
        assert [e["n"] for e in ingress_server.entries("traced")] == [0, 1, 2]
        assert len(spans.get_finished_spans()) == 1  # still only the control span
    finally:
        HTTPXClientInstrumentor.uninstrument_client(client)
        client.close()
        provider.shutdown()
