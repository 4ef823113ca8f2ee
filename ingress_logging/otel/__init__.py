"""OpenTelemetry exporters that ship logs and spans into session-ingress.

One line of setup::

    provider.add_log_record_processor(BatchLogRecordProcessor(IngressLogExporter()))

or none at all, through OpenTelemetry's auto-configuration (the exporters are
registered under the ``ingress`` name)::

    OTEL_LOGS_EXPORTER=ingress opentelemetry-instrument python app.py

Needs the ``otel`` extra (``pip install 'ingress-logging[otel]'``), which adds
``opentelemetry-sdk`` and ``opentelemetry-instrument`` (the configurator it
runs is ``_configurator.IngressConfigurator``). See docs/opentelemetry.md for the entry mapping.
"""

from __future__ import annotations

try:
    import opentelemetry.sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "ingress_logging.otel needs opentelemetry-sdk: pip install 'ingress-logging[otel]'"
    ) from exc

from ._convert import (
    LOG_ENTRY_TYPE,
    SESSION_ID_ATTRIBUTE,
    SPAN_ENTRY_TYPE,
    log_to_entry,
    span_to_entry,
)
from ._exporters import IngressLogExporter, IngressSpanExporter

__all__ = [
    "LOG_ENTRY_TYPE",
    "SESSION_ID_ATTRIBUTE",
    "SPAN_ENTRY_TYPE",
    "IngressLogExporter",
    "IngressSpanExporter",
    "log_to_entry",
    "span_to_entry",
]
