"""ingress-logging plugin: diagnostics events as OpenTelemetry metric counters.

Loaded through the ``ingress_logging`` entry-point group (name ``otel-metrics``);
counts on the global ``MeterProvider``, so it is a no-op until the application
configures one. See the README for the instruments.
"""

from __future__ import annotations

from ingress_logging.diagnostics import DiagnosticData, Level
from ingress_logging.hookspecs import hookimpl

from ._instruments import EVENTS_COUNTER, ITEMS_COUNTER, METER_NAME, OtelMetricsPlugin

__all__ = [
    "EVENTS_COUNTER",
    "ITEMS_COUNTER",
    "METER_NAME",
    "OtelMetricsPlugin",
    "ingress_diagnostic",
]

_global: OtelMetricsPlugin | None = None


@hookimpl
def ingress_diagnostic(level: Level, event: str, data: DiagnosticData) -> None:
    """Count the event on the global meter provider."""
    global _global
    if _global is None:  # created on first event, not at import (keeps import cheap)
        _global = OtelMetricsPlugin()
    _global.ingress_diagnostic(level, event, data)
