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

import atexit
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
else:
    try:
        from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
    except ImportError:  # opentelemetry-sdk before the 1.39 rename
        from opentelemetry.sdk._logs.export import LogExporter as LogRecordExporter
        from opentelemetry.sdk._logs.export import LogExportResult as LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._session_id import validate_session_id
from ..diagnostics import DELIVERY_DROPPED, DiagnosticSink, logger_sink
from ..entries import Limits
from ..errors import InvalidSessionIdError
from ..handler import IGNORED_LOGGERS
from . import _config
from ._convert import log_record_session_id, log_to_entry, span_session_id, span_to_entry

__all__ = [
    "DROP_EXPORTER_ERROR",
    "DROP_IGNORED_SCOPE",
    "DROP_INVALID_SESSION",
    "DROP_NO_SESSION",
    "DROP_SHUT_DOWN",
    "IngressLogExporter",
    "IngressSpanExporter",
]

# Exporter-side drop reasons (the engine counts its own).
DROP_NO_SESSION: Final = "no_session_id"
DROP_INVALID_SESSION: Final = "invalid_session_id"
DROP_SHUT_DOWN: Final = "exporter_shut_down"
DROP_EXPORTER_ERROR: Final = "exporter_error"
#: Records whose instrumentation scope is an ignored logger (see below).
DROP_IGNORED_SCOPE: Final = "ignored_scope"


class _Engine(Protocol):
    """The part of ``delivery.DeliveryEngine`` the exporters use."""

    def submit(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        record: object | None = None,
    ) -> bool: ...

    def flush(self, timeout: float | None = None) -> Any: ...


class _ExporterCore:
    """What both exporters share: engine, default session, drop counts, flush."""

    def __init__(
        self,
        url: str | None,
        token: str | None,
        session_id: str | None,
        base_api_url: str | None,
        engine: _Engine | None,
        shutdown_timeout: float | None,
        limits: Limits,
        engine_options: dict[str, Any],
    ) -> None:
        self._default_session_id = _config.default_session_id(session_id)
        self._shutdown_timeout = _config.shutdown_timeout(shutdown_timeout)
        self._limits = limits
        if engine is None:
            from ..delivery import get_shared_engine

            # The same keyword set as IngressHandler passes (plugins included,
            # None options left out), so equal settings give the same engine.
            options = {k: v for k, v in engine_options.items() if v is not None}
            self._engine_config: dict[str, Any] | None = {
                "url_template": url,
                "token": token,
                "base_api_url": base_api_url,
                "plugins": options.pop("plugins", None),
                **options,
            }
            engine = get_shared_engine(**self._engine_config)
        elif url is not None or token is not None or base_api_url is not None or engine_options:
            raise TypeError("pass either engine= or the engine's settings, not both")
        else:
            self._engine_config = None
        self._engine: _Engine = engine
        diagnostics = getattr(engine, "diagnostic", None)
        self._diagnostics: DiagnosticSink = diagnostics if callable(diagnostics) else logger_sink
        self._lock = threading.Lock()
        self._drops: dict[str, int] = {}
        self._valid_ids: set[str] = set()
        self._shut_down = False
        #: The engine's ``FlushResult`` of the last ``force_flush``/``shutdown``.
        self.last_flush_result: Any = None
        # Registered after the engine's own hook, so it runs before the engine
        # closes at exit (atexit runs hooks last-in, first-out).
        atexit.register(_flush_global_provider_at_exit, weakref.ref(self))

    def _global_provider(self) -> object:
        """The global provider of this exporter's signal (the auto-configured one)."""
        raise NotImplementedError

    @property
    def engine(self) -> _Engine:
        """The delivery engine (``stats()``, ``flush(timeout)``)."""
        return self._engine

    @property
    def session_id(self) -> str | None:
        """The default session id (``session_id=`` or ``INGRESS_LOGGING_SESSION_ID``)."""
        return self._default_session_id

    def dropped(self) -> dict[str, int]:
        """Items this exporter refused before the engine, by reason."""
        with self._lock:
            return dict(self._drops)

    def _drop(self, reason: str, count: int = 1) -> None:
        """Count refused items; report at the 1st, 2nd, 4th, 8th... of each reason."""
        with self._lock:
            before = self._drops.get(reason, 0)
            total = before + count
            self._drops[reason] = total
        if (total).bit_length() > before.bit_length():  # crossed a power of two
            with contextlib.suppress(Exception):  # a sink must not break export
                self._diagnostics("warn", DELIVERY_DROPPED, {"count": total, "reason": reason})

    def _valid(self, session_id: str | None) -> bool:
        if session_id is None:
            self._drop(DROP_NO_SESSION)
            return False
        if session_id in self._valid_ids:
            return True
        try:
            validate_session_id(session_id)
        except InvalidSessionIdError:
            self._drop(DROP_INVALID_SESSION)
            return False
        with self._lock:
            if len(self._valid_ids) >= 4096:
                self._valid_ids.clear()
            self._valid_ids.add(session_id)
        return True

    def _submit_all(
        self,
        batch: Sequence[Any],
        session_of: Callable[[Any, str | None], str | None],
        convert: Callable[[Any, Limits], dict[str, Any]],
        ignore: Callable[[Any], bool] | None = None,
    ) -> bool:
        """Submit every item; True if the engine accepted all that were not ignored."""
        if self._shut_down:
            self._drop(DROP_SHUT_DOWN, len(batch))
            return False
        ok = True
        for item in batch:
            try:
                if ignore is not None and ignore(item):
                    self._drop(DROP_IGNORED_SCOPE)
                    continue
                session_id = session_of(item, self._default_session_id)
                if not self._valid(session_id):
                    ok = False
                    continue
                assert session_id is not None
                builder = functools.partial(convert, item, self._limits)
                if not self._live_engine().submit(session_id, builder, record=item):
                    ok = False  # the engine counted and reported it
            except Exception:
                self._drop(DROP_EXPORTER_ERROR)
                ok = False
        return ok

    def _live_engine(self) -> _Engine:
        """The shared engine, re-acquired if it was closed (at interpreter exit).

        The engine closes itself in an ``atexit`` hook, and a provider built
        before it shuts down (exporting its last batch) *after* that hook.
        A shared engine is replaced rather than losing that batch. (An
        explicit ``engine=`` is the caller's: it is used as it is.)
        """
        engine = self._engine
        if self._engine_config is not None and getattr(engine, "closed", False):
            from ..delivery import get_shared_engine

            engine = self._engine = get_shared_engine(**self._engine_config)
        return engine

    def _flush(self, timeout: float) -> bool:
        try:
            result = self._engine.flush(timeout)
        except Exception:
            self._drop(DROP_EXPORTER_ERROR)
            return False
        self.last_flush_result = result
        return bool(result)

    def _shutdown(self, timeout_millis: float | None) -> None:
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        timeout = self._shutdown_timeout
        if timeout_millis is not None:
            timeout = min(timeout, max(0.0, timeout_millis / 1000))
        if not self._flush(timeout):
            with contextlib.suppress(Exception):
                result = self.last_flush_result
                self._diagnostics(
                    "warn",
                    "otel_exporter_shutdown_incomplete",
                    {
                        "failed": getattr(result, "failed", 0),
                        "dropped": getattr(result, "dropped", 0),
                        "pending": getattr(result, "pending", 0),
                    },
                )


def _flush_global_provider_at_exit(ref: weakref.ReferenceType[_ExporterCore]) -> None:
    """At exit, before the shared engine closes: push the SDK's last batch into it.

    Auto-configuration creates each provider *before* its exporter (and so
    before the engine), so the provider's own exit hook, which exports the
    batch still held by its ``Batch*Processor``, would run after the engine
    closed. Flushing the global provider here, while the engine is open,
    keeps those records, in their chain. Providers that are not global are
    covered by ``_live_engine``.
    """
    exporter = ref()
    if exporter is None or exporter._shut_down:
        return
    with contextlib.suppress(Exception):  # never fail the interpreter's exit
        force_flush = getattr(exporter._global_provider(), "force_flush", None)
        if callable(force_flush):
            force_flush()


def _ignored_scope(item: Any) -> bool:
    """True for records of the loggers the stdlib handler never ships either.

    With ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`` the SDK's
    ``LoggingHandler`` turns every stdlib record into an OpenTelemetry record
    whose scope name is the logger name; shipping those of ``httpx``,
    ``httpcore`` and ``ingress_logging`` would feed delivery back into itself.
    """
    scope = getattr(item, "instrumentation_scope", None)
    name = getattr(scope, "name", None)
    if not isinstance(name, str):
        return False
    return any(name == prefix or name.startswith(prefix + ".") for prefix in IGNORED_LOGGERS)


class IngressLogExporter(LogRecordExporter, _ExporterCore):
    """OpenTelemetry log exporter that ships each record as a transcript entry.

    Zero-argument construction works (that is how ``OTEL_LOGS_EXPORTER=ingress``
    builds it): everything then comes from plugins and ``INGRESS_LOGGING_*``
    environment variables.

    Args:
        url: append URL template containing ``{session_id}``; default
            ``INGRESS_LOGGING_URL``, else ``{base_api_url}/v1/session_ingress/session/{id}``.
        token: bearer token; default from plugins, ``INGRESS_LOGGING_TOKEN`` or
            ``INGRESS_LOGGING_TOKEN_FILE`` (resolved per request). Never stored here.
        session_id: session for records without a ``session.id`` attribute
            (on the record or the resource); default ``INGRESS_LOGGING_SESSION_ID``.
        base_api_url: API root used by the default URL.
        engine: an explicit ``DeliveryEngine`` (its owner closes it); default:
            the process-wide engine for this configuration.
        shutdown_timeout: longest wait of ``shutdown()`` in seconds; default
            ``INGRESS_LOGGING_SHUTDOWN_TIMEOUT``, else 5.
        limits: string/list/depth limits for entries (``entries.Limits``).
        **engine_options: passed to ``get_shared_engine`` (queue limits, policy,
            plugins, ...).

    Raises:
        ConfigError: an unusable ``session_id`` or ``shutdown_timeout``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        session_id: str | None = None,
        base_api_url: str | None = None,
        engine: _Engine | None = None,
        *,
        shutdown_timeout: float | None = None,
        limits: Limits | None = None,
        **engine_options: Any,
    ) -> None:
        _ExporterCore.__init__(
            self,
            url,
            token,
            session_id,
            base_api_url,
            engine,
            shutdown_timeout,
            limits or Limits(),
            engine_options,
        )

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        """Queue every record (``ReadableLogRecord`` or ``LogData``); no network I/O.

        ``FAILURE`` if any record was refused: no session id, an invalid one,
        a full queue, or the exporter is shut down. The others still go.
        """
        ok = self._submit_all(batch, log_record_session_id, log_to_entry, _ignored_scope)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait for the engine to deliver what was queued; False on timeout or failure."""
        return self._flush(max(0.0, timeout_millis / 1000))

    def _global_provider(self) -> object:
        from opentelemetry._logs import get_logger_provider

        return get_logger_provider()

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Flush (at most ``min(timeout_millis, shutdown_timeout)``) and refuse later exports.

        The outcome is kept in ``last_flush_result``; an incomplete delivery is
        also reported through diagnostics. The shared engine stays open.
        """
        self._shutdown(timeout_millis)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session_id={self._default_session_id!r}>"


class IngressSpanExporter(SpanExporter, _ExporterCore):
    """OpenTelemetry span exporter: one transcript entry per finished span.

    Same arguments and environment variables as :class:`IngressLogExporter`;
    the session comes from the span's ``session.id`` attribute, the resource's,
    then the default.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        session_id: str | None = None,
        base_api_url: str | None = None,
        engine: _Engine | None = None,
        *,
        shutdown_timeout: float | None = None,
        limits: Limits | None = None,
        **engine_options: Any,
    ) -> None:
        _ExporterCore.__init__(
            self,
            url,
            token,
            session_id,
            base_api_url,
            engine,
            shutdown_timeout,
            limits or Limits(),
            engine_options,
        )

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        """Queue every span; ``FAILURE`` if any was refused (see the log exporter)."""
        ok = self._submit_all(spans, span_session_id, span_to_entry)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait for the engine to deliver what was queued; False on timeout or failure."""
        return self._flush(max(0.0, timeout_millis / 1000))

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Flush (at most ``min(timeout_millis, shutdown_timeout)``) and refuse later exports."""
        self._shutdown(timeout_millis)

    def _global_provider(self) -> object:
        from opentelemetry.trace import get_tracer_provider

        return get_tracer_provider()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session_id={self._default_session_id!r}>"
