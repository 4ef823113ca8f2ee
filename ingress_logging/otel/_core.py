"""What both exporters share: the engine, the default session, drop counts, flush.

Kept apart from the two exporter classes so each module has one job: this
one decides what happens to a batch (session, validation, the scope filter,
the size hint, submit) and to a flush/shutdown; ``_exporters`` only adapts
it to the SDK's two exporter interfaces.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Never

from .._frontdoor import (
    DROP_INVALID_SESSION,
    DROP_NO_SESSION,
    ENTRY_OVERHEAD,
    IGNORED_LOGGERS,
    DeliveryOptions,
    EngineLike,
    default_diagnostics,
    shared_engine,
    unknown_keywords,
)
from .._session_id import SessionId, validate_session_id
from ..diagnostics import DropCounter
from ..entries import Limits
from ..errors import InvalidSessionIdError
from . import _config

if TYPE_CHECKING:
    import httpx

    from ..protocol import RetryPolicy

__all__ = [
    "DROP_EXPORTER_ERROR",
    "DROP_IGNORED_SCOPE",
    "DROP_INVALID_SESSION",
    "DROP_NO_SESSION",
    "DROP_SHUT_DOWN",
    "SHUTDOWN_INCOMPLETE",
    "ExporterCore",
    "SizeHints",
    "ignored_scope",
]

# Exporter-side drop reasons besides the front doors' (the engine counts its own).
DROP_SHUT_DOWN: Final = "exporter_shut_down"
DROP_EXPORTER_ERROR: Final = "exporter_error"
#: Records whose instrumentation scope is an ignored logger (see below).
DROP_IGNORED_SCOPE: Final = "ignored_scope"

#: Diagnostics event: ``shutdown()`` returned before everything was delivered.
#: Data: ``{"failed", "dropped", "pending"}`` (counts of the final flush).
SHUTDOWN_INCOMPLETE: Final = "otel_exporter_shutdown_incomplete"


class ExporterCore:
    """What both exporters share: the constructor, engine, default session, drop counts, flush.

    Zero-argument construction works (that is how ``OTEL_LOGS_EXPORTER=ingress``
    builds an exporter): everything then comes from plugins and
    ``INGRESS_LOGGING_*`` environment variables.

    Args:
        url: append URL template containing ``{session_id}``; default
            ``INGRESS_LOGGING_URL``, else ``{base_api_url}/v1/session_ingress/session/{id}``.
        token: bearer token, or a callable returning one (asked per request);
            default from plugins, ``INGRESS_LOGGING_TOKEN`` or
            ``INGRESS_LOGGING_TOKEN_FILE``. Never shown in a repr or message.
        session_id: session for items without a ``session.id`` attribute
            (on the item or the resource); default ``INGRESS_LOGGING_SESSION_ID``.
        base_api_url: API root used by the default URL.
        engine: an explicit ``DeliveryEngine`` (its owner closes it); default:
            the process-wide engine for this configuration.
        shutdown_timeout: longest wait of ``shutdown()`` in seconds; default
            ``INGRESS_LOGGING_SHUTDOWN_TIMEOUT``, else 5.
        limits: string/list/depth limits for entries (``entries.Limits``).
        plugins: a pluggy ``PluginManager`` for the engine (default: global).
        retry_policy, max_queue_entries, max_queue_bytes, overflow,
            block_timeout, max_concurrency, max_idle_sessions, pipeline_window, timeout,
            allow_insecure_http, spool_dir, spool_max_bytes: the shared
            engine's settings, as ``IngressHandler`` takes them.

    Raises:
        ConfigError: an unusable ``session_id`` or ``shutdown_timeout``, or no
            URL configured anywhere.
        TypeError: an unknown keyword (naming the close match), or
            ``engine=`` together with the engine's settings.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | Callable[[], str | None] | None = None,
        session_id: str | None = None,
        base_api_url: str | None = None,
        *,
        engine: EngineLike | None = None,
        shutdown_timeout: float | None = None,
        limits: Limits | None = None,
        plugins: Any = None,
        retry_policy: RetryPolicy | None = None,
        max_queue_entries: int | None = None,
        max_queue_bytes: int | None = None,
        overflow: str | None = None,
        block_timeout: float | None = None,
        max_concurrency: int | None = None,
        max_idle_sessions: int | None = None,
        pipeline_window: int | None = None,
        timeout: float | httpx.Timeout | None = None,
        allow_insecure_http: bool | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int | None = None,
        **unknown: Never,
    ) -> None:
        if unknown:
            known = [n for n in inspect.signature(ExporterCore).parameters if n != "unknown"]
            raise unknown_keywords(type(self).__name__, unknown, known, {"policy": "overflow"})
        self._default_session_id = _config.default_session_id(session_id)
        self._shutdown_timeout = _config.shutdown_timeout(shutdown_timeout)
        self._limits = limits or Limits()
        options = DeliveryOptions(
            retry_policy=retry_policy,
            max_queue_entries=max_queue_entries,
            max_queue_bytes=max_queue_bytes,
            overflow=overflow,
            block_timeout=block_timeout,
            max_concurrency=max_concurrency,
            max_idle_sessions=max_idle_sessions,
            pipeline_window=pipeline_window,
            timeout=timeout,
            allow_insecure_http=allow_insecure_http,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
        )
        self._reacquire: Callable[[], EngineLike] | None = None
        if engine is None:
            _config.check_url_variable(url, base_api_url)
            # The same settings as IngressHandler passes, so equal settings
            # give the same engine (one queue, one chain per session).
            self._reacquire = functools.partial(
                shared_engine,
                url=url,
                token=token,
                base_api_url=base_api_url,
                plugins=plugins,
                options=options,
                close_timeout=self._shutdown_timeout,
            )
            engine = self._reacquire()
        elif any(v is not None for v in (url, token, base_api_url, plugins)) or options.given():
            raise TypeError("pass either engine= or the engine's settings, not both")
        self._engine: EngineLike = engine
        self._diagnostics = default_diagnostics(plugins)
        self._lock = threading.Lock()
        self._drops = DropCounter(self._diagnostics)
        self._sizes = SizeHints()
        self._shut_down = False
        #: The engine's ``FlushResult`` of the last ``force_flush``/``shutdown``.
        self.last_flush_result: Any = None
        # Registered after the engine's own hook, so it runs before the engine
        # closes at exit (atexit runs hooks last-in, first-out).
        self._exit_hook = functools.partial(_flush_global_provider_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)

    def _global_provider(self) -> object:
        """The global provider of this exporter's signal (the auto-configured one)."""
        raise NotImplementedError

    @property
    def engine(self) -> EngineLike:
        """The delivery engine (``stats()``, ``flush(timeout)``)."""
        return self._engine

    @property
    def session_id(self) -> str | None:
        """The default session id (``session_id=`` or ``INGRESS_LOGGING_SESSION_ID``)."""
        return self._default_session_id

    def dropped(self) -> dict[str, int]:
        """Items this exporter refused before the engine, by reason."""
        return self._drops.snapshot()

    def _valid(self, session_id: str | None) -> SessionId | None:
        if session_id is None:
            self._drops.add(DROP_NO_SESSION)
            return None
        try:
            return validate_session_id(session_id)  # a dict lookup once seen
        except InvalidSessionIdError:
            self._drops.add(DROP_INVALID_SESSION)
            return None

    def _submit_all(
        self,
        batch: Sequence[Any],
        session_of: Callable[[Any, str | None], str | None],
        convert: Callable[[Any, Limits], dict[str, Any]],
        size_of: Callable[[SizeHints, Any], int],
        ignore: Callable[[Any], bool] | None = None,
    ) -> bool:
        """Submit every item; True if the engine accepted all that were not ignored."""
        if self._shut_down:
            self._drops.add(DROP_SHUT_DOWN, len(batch))
            return False
        ok = True
        for item in batch:
            try:
                if ignore is not None and ignore(item):
                    self._drops.add(DROP_IGNORED_SCOPE)
                    continue
                session_id = self._valid(session_of(item, self._default_session_id))
                if session_id is None:
                    ok = False
                    continue
                builder = functools.partial(convert, item, self._limits)
                engine = self._live_engine()
                if not engine.submit(
                    session_id, builder, record=item, size_hint=size_of(self._sizes, item)
                ):
                    ok = False  # the engine counted and reported it
            except Exception:
                self._drops.add(DROP_EXPORTER_ERROR)
                ok = False
        return ok

    def _live_engine(self) -> EngineLike:
        """The shared engine, re-acquired if it was closed (at interpreter exit).

        The engine closes itself in an ``atexit`` hook, and a provider built
        before it shuts down (exporting its last batch) *after* that hook.
        A shared engine is replaced rather than losing that batch. (An
        explicit ``engine=`` is the caller's: it is used as it is.)
        """
        engine = self._engine
        if self._reacquire is not None and getattr(engine, "closed", False):
            engine = self._engine = self._reacquire()
        return engine

    def _flush(self, timeout: float) -> bool:
        try:
            result = self._engine.flush(timeout)
        except Exception:
            self._drops.add(DROP_EXPORTER_ERROR)
            return False
        self.last_flush_result = result
        return bool(result)

    def _shutdown(self, timeout_millis: float | None) -> bool:
        """Flush within the deadline, refuse later exports; True if all was delivered."""
        with self._lock:
            if self._shut_down:
                return bool(self.last_flush_result)
            self._shut_down = True
        atexit.unregister(self._exit_hook)
        timeout = self._shutdown_timeout
        if timeout_millis is not None:
            timeout = min(timeout, max(0.0, timeout_millis / 1000))
        if self._flush(timeout):
            return True
        with contextlib.suppress(Exception):
            result = self.last_flush_result
            self._diagnostics(
                "warn",
                SHUTDOWN_INCOMPLETE,
                {
                    "failed": getattr(result, "failed", 0),
                    "dropped": getattr(result, "dropped", 0),
                    "pending": getattr(result, "pending", 0),
                },
            )
        return False


def _attributes_size(attributes: Any) -> int:
    size = 0
    if attributes:
        for value in attributes.values():
            size += 32 + (len(value) if isinstance(value, str) else 16)
    return size


class SizeHints:
    """Bytes to charge against the engine's memory cap before the entry exists.

    The entry is built on the worker, so the engine cannot measure it at
    submit. This costs a shallow look at the body and attributes, never a
    walk; a resource (shared by every record of a provider) is measured once.
    """

    __slots__ = ("_resources",)

    def __init__(self) -> None:
        # id -> (resource, size): holding the resource keeps its id unique.
        self._resources: dict[int, tuple[object, int]] = {}

    def _resource(self, resource: Any) -> int:
        if resource is None:
            return 0
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        size = _attributes_size(getattr(resource, "attributes", None))
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, size)
        return size

    def _hint(self, record: Any, resource: Any) -> int:
        size = ENTRY_OVERHEAD + self._resource(resource)
        body = getattr(record, "body", None)
        if isinstance(body, str | bytes):
            size += len(body)
        elif isinstance(body, Mapping | list | tuple):
            size += 64 * (len(body) + 1)
        return size + _attributes_size(getattr(record, "attributes", None))

    def log(self, item: Any) -> int:
        """Size hint of a ``ReadableLogRecord`` (or ``LogData``)."""
        record = getattr(item, "log_record", item)
        resource = getattr(item, "resource", None) or getattr(record, "resource", None)
        return self._hint(record, resource)

    def span(self, span: Any) -> int:
        """Size hint of a ``ReadableSpan``."""
        return self._hint(span, span.resource) + 128 * (len(span.events) + len(span.links))


def _flush_global_provider_at_exit(ref: weakref.ReferenceType[ExporterCore]) -> None:
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


def ignored_scope(item: Any) -> bool:
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
