"""``IngressLogExporter`` and ``IngressSpanExporter``: the OpenTelemetry front door.

``export(batch)`` picks each item's session, and hands the delivery engine a
builder that turns the item into an entry on the engine's worker (see
``_convert``). It never touches the network, so the SDK's export thread (or,
with a ``Simple*Processor``, the application's own thread) never waits for
the server. ``SUCCESS`` from ``export`` therefore means "every item was
accepted for delivery"; whether it was *delivered* is what ``force_flush``
and ``shutdown`` report, and they say so honestly: a failed or dropped entry
makes ``force_flush`` return ``False``.

The engine is the process-wide one for the configuration (``get_shared_engine``),
the same one an ``IngressHandler`` with the same configuration uses, so stdlib
records and OpenTelemetry records of one session form one ``parentUuid``
chain. For that reason ``shutdown()`` flushes the engine but does not close
it: the handler (or another provider) may still be using it, and it flushes
by itself at interpreter exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
else:
    try:
        from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
    except ImportError:  # opentelemetry-sdk before the 1.39 rename
        from opentelemetry.sdk._logs.export import LogExporter as LogRecordExporter
        from opentelemetry.sdk._logs.export import LogExportResult as LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._convert import log_record_session_id, log_to_entry, span_session_id, span_to_entry
from ._core import ExporterCore, SizeHints, ignored_scope

__all__ = ["IngressLogExporter", "IngressSpanExporter"]


class IngressLogExporter(LogRecordExporter, ExporterCore):
    """OpenTelemetry log exporter that ships each record as a transcript entry.

    Zero-argument construction works (that is how ``OTEL_LOGS_EXPORTER=ingress``
    builds it): everything then comes from plugins and ``INGRESS_LOGGING_*``
    environment variables. The constructor is ``ExporterCore``'s (the span
    exporter's too); its arguments:

    Args:
        url: append URL template containing ``{session_id}``; default
            ``INGRESS_LOGGING_URL``, else ``{base_api_url}/v1/session_ingress/session/{id}``.
        token: bearer token, or a callable returning one (asked per request);
            default from plugins, ``INGRESS_LOGGING_TOKEN`` or
            ``INGRESS_LOGGING_TOKEN_FILE``. Never shown in a repr or message.
        session_id: session for records without a ``session.id`` attribute
            (on the record or the resource); default ``INGRESS_LOGGING_SESSION_ID``.
        base_api_url: API root used by the default URL.
        engine: an explicit ``DeliveryEngine`` (its owner closes it); default:
            the process-wide engine for this configuration.
        shutdown_timeout: longest wait of ``shutdown()`` in seconds; default
            ``INGRESS_LOGGING_SHUTDOWN_TIMEOUT``, else 5.
        limits: string/list/depth limits for entries (``entries.Limits``).
        plugins, retry_policy, max_queue_entries, ...: the shared engine's
            settings, as ``IngressHandler`` takes them (see ``ExporterCore``).

    Raises:
        ConfigError: an unusable ``session_id`` or ``shutdown_timeout``, or no
            URL configured anywhere.
        TypeError: an unknown keyword (naming the close match).
    """

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        """Queue every record (``ReadableLogRecord`` or ``LogData``); no network I/O.

        ``FAILURE`` if any record was refused: no session id, an invalid one,
        a full queue, or the exporter is shut down. The others still go.
        """
        ok = self._submit_all(
            batch, log_record_session_id, log_to_entry, SizeHints.log, ignored_scope
        )
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait for the engine to deliver what was queued; False on timeout or failure."""
        return self._flush(max(0.0, timeout_millis / 1000))

    def _global_provider(self) -> object:
        from opentelemetry._logs import get_logger_provider

        return get_logger_provider()

    def shutdown(self, timeout_millis: float | None = None) -> bool:
        """Flush (at most ``min(timeout_millis, shutdown_timeout)``) and refuse later exports.

        Returns True only if everything was delivered (the SDK's interface
        returns nothing; the answer is for callers who ask). The outcome is
        kept in ``last_flush_result``; an incomplete delivery is also
        reported through diagnostics. The shared engine stays open. A second
        call returns the first one's answer.
        """
        return self._shutdown(timeout_millis)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session_id={self._default_session_id!r}>"


class IngressSpanExporter(SpanExporter, ExporterCore):
    """OpenTelemetry span exporter: one transcript entry per finished span.

    Same arguments and environment variables as :class:`IngressLogExporter`;
    the session comes from the span's ``session.id`` attribute, the resource's,
    then the default.
    """

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        """Queue every span; ``FAILURE`` if any was refused (see the log exporter)."""
        ok = self._submit_all(spans, span_session_id, span_to_entry, SizeHints.span)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait for the engine to deliver what was queued; False on timeout or failure."""
        return self._flush(max(0.0, timeout_millis / 1000))

    def shutdown(self, timeout_millis: float | None = None) -> bool:  # type: ignore[override]
        """Flush (at most ``min(timeout_millis, shutdown_timeout)``) and refuse later exports.

        True only if everything was delivered, like :meth:`IngressLogExporter.shutdown`.
        """
        return self._shutdown(timeout_millis)

    def _global_provider(self) -> object:
        from opentelemetry.trace import get_tracer_provider

        return get_tracer_provider()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session_id={self._default_session_id!r}>"
