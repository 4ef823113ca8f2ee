"""The counters and how a diagnostics event becomes measurements."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

from opentelemetry import metrics

from ingress_logging.diagnostics import DiagnosticData, Level
from ingress_logging.hookspecs import hookimpl

__all__ = ["EVENTS_COUNTER", "ITEMS_COUNTER", "METER_NAME", "OtelMetricsPlugin"]

METER_NAME: Final = "ingress_logging_otel_metrics"
EVENTS_COUNTER: Final = "ingress_logging.diagnostic.events"
ITEMS_COUNTER: Final = "ingress_logging.diagnostic.items"

#: Event fields that become attributes: low-cardinality by design. Anything
#: else (attempt numbers, delays) would multiply time series for no insight.
_ATTRIBUTE_FIELDS: Final = ("status", "reason")


def _version() -> str:
    try:
        return version("ingress-logging-otel-metrics")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return ""


class OtelMetricsPlugin:
    """A diagnostics sink that counts events on an OpenTelemetry meter.

    With ``meter_provider=None`` it uses the global provider, which is a
    no-op until the application configures one (so installing the plugin
    costs nothing and changes nothing). Instruments are created once; the
    API's proxy meter upgrades them when a provider is set later.
    """

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        if meter_provider is None:
            meter = metrics.get_meter(METER_NAME, _version())
        else:
            meter = meter_provider.get_meter(METER_NAME, _version())
        self._events = meter.create_counter(
            EVENTS_COUNTER, unit="{event}", description="ingress-logging diagnostics events"
        )
        self._items = meter.create_counter(
            ITEMS_COUNTER,
            unit="{item}",
            description="Items (entries) counted by diagnostics events that carry a count",
        )

    @hookimpl
    def ingress_diagnostic(self, level: Level, event: str, data: DiagnosticData) -> None:
        """Add 1 to the events counter, and ``data["count"]`` to the items counter."""
        attributes: dict[str, str | int] = {"event": event, "level": level}
        for name in _ATTRIBUTE_FIELDS:
            value = data.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool):
                attributes[name] = value
        self._events.add(1, attributes)
        count = data.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            self._items.add(count, attributes)
