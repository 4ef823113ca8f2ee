"""``IngressHandler``: the stdlib ``logging`` front door.

The handler does the least it can on the thread that logs (pick the session,
format the message, note the active span, copy the record's attributes; see
``entries.RecordCapture`` for why exactly those) and hands a builder to the
shared delivery engine, which completes the entry on its worker. Nothing here
touches the network or waits for it, except ``flush()``/``close()``.

Two rules keep it from hurting the application:

* **Recursion.** Records from the loggers ``httpx``, ``httpcore`` and
  ``ingress_logging`` (and their children), and every record emitted on an
  engine worker thread, are refused in :meth:`handle` before any filter or
  lock: delivering one would produce more records to deliver.
* **No deadlock in flush.** ``logging.shutdown()`` calls ``flush()`` with this
  handler's lock held, ``dictConfig()`` with the logging module's lock held.
  This handler never takes its own lock on the emit path (the engine's
  ``submit`` is thread-safe), so the worker's own log records cannot block on
  it. When ``flush()`` runs with the module lock held by the calling thread,
  the engine keeps its workers off that lock (it warms the level caches that
  httpx's ``isEnabledFor`` calls would otherwise fill under it), and the
  handler waits only while entries keep finishing: a slice of 0.5 s without
  progress means something on the delivery path wants the lock, and flush
  returns (the entries stay queued in the shared engine, which keeps
  delivering them and flushes them at interpreter exit).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Never, Protocol

from ._frontdoor import (
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
from ._notices import not_a_route
from ._session_id import validate_session_id
from .diagnostics import DiagnosticSink, DropCounter
from .entries import DEFAULT_LIMITS, SESSION_ID_VAR, Limits, RecordCapture
from .errors import InvalidSessionIdError

if TYPE_CHECKING:
    import httpx

    from .protocol import RetryPolicy

__all__ = ["IGNORED_LOGGERS", "IngressHandler"]

DROP_HANDLER_ERROR: Final = "handler_error"

_CACHE_LIMIT: Final = 4096
#: Under the logging module's lock (dictConfig, fileConfig) flush() waits in
#: slices this long and stops after one in which nothing finished: a worker
#: may then be blocked on that very lock (a plugin or a logger created on the
#: delivery path), and reconfiguring must not stall for a whole flush_timeout.
_LOCKED_SLICE: Final = 0.5
#: The longest a flush or close waits while this thread holds the logging
#: module's lock (``dictConfig``): every other thread's logging waits on it.
_LOCKED_BOUND: Final = 1.0
#: This module's own logger: its records are never shipped (see IGNORED_LOGGERS).
_log = logging.getLogger(__name__)
#: Names this handler no longer takes, and the one it does.
_RENAMED: Final = {"policy": "overflow", "url_template": "url"}


class _Engine(EngineLike, Protocol):
    """The part of ``delivery.DeliveryEngine`` this handler uses: a front door's, and more."""

    def stats(self) -> Any: ...

    def is_worker_thread(self) -> bool: ...


def _module_lock_held() -> bool:
    """True when the calling thread holds ``logging``'s module lock (dictConfig, fileConfig)."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    if is_owned is None:
        return False
    try:
        return bool(is_owned())
    except Exception:
        return False


class IngressHandler(logging.Handler):
    """Ship log records to session-ingress, one transcript entry per record.

    Every argument is a plain value, so ``dictConfig`` and ``fileConfig`` can
    build it (see docs/handler.md).

    Args:
        url: append URL template containing ``{session_id}``; default
            ``{base_api_url}/v1/session_ingress/session/{session_id}``, else
            ``INGRESS_LOGGING_URL`` / ``INGRESS_LOGGING_BASE_URL``. With none
            of them (and no URL plugin) the handler is not built: ConfigError.
        token: bearer token (or a callable returning one); default from
            plugins / ``INGRESS_LOGGING_TOKEN``. Never stored on the handler.
        session_id: session for records that name none (neither
            ``extra={"session_id": ...}`` nor ``with ingress_logging.session(...)``).
        level: handler level (``logging.NOTSET`` passes everything).
        formatter: a ``logging.Formatter`` or a format string (``%``-style)
            for ``content``; the same as ``setFormatter`` afterwards (which is
            what ``dictConfig``'s ``"formatter"`` key does).
        base_api_url: API root used by the default ``url``.
        retry_policy, max_queue_entries, max_queue_bytes, overflow,
            block_timeout, max_concurrency, max_idle_sessions, pipeline_window, timeout,
            allow_insecure_http, spool_dir, spool_max_bytes: the shared
            engine's settings (``DeliveryEngine``); None keeps its default.
        max_message_length: characters kept of the message, exception text
            and stack (longer ones are cut and marked in ``truncated``).
        max_string_length: characters kept of any string in ``extra``.
        flush_timeout: seconds ``flush()`` waits for delivery.
        close_timeout: seconds ``close()`` waits for delivery (default 5).
            Given explicitly, it also bounds the shared engine's exit
            deadline (the shortest one asked for wins).
        engine: an explicit ``DeliveryEngine`` (the caller owns its lifetime);
            default: the process-wide engine for this configuration.
        plugins: a pluggy ``PluginManager`` for the engine (default: global).
        diagnostics: sink for the handler's own drop reports; default: the
            plugins' ``ingress_diagnostic`` sinks plus the default one.
        ignore_loggers: more logger names whose records are never shipped.

    Raises:
        TypeError: an unknown keyword (naming the close match), or
            ``engine=`` together with the engine's settings.
        ConfigError: no URL configured anywhere.
        InvalidSessionIdError: an unusable ``session_id``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | Callable[[], str | None] | None = None,
        session_id: str | None = None,
        level: int | str = logging.NOTSET,
        *,
        formatter: logging.Formatter | str | None = None,
        base_api_url: str | None = None,
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
        max_message_length: int = DEFAULT_LIMITS.max_message_length,
        max_string_length: int = DEFAULT_LIMITS.max_string_length,
        flush_timeout: float = 5.0,
        close_timeout: float | None = None,
        engine: _Engine | None = None,
        plugins: Any = None,
        diagnostics: DiagnosticSink | None = None,
        ignore_loggers: tuple[str, ...] | list[str] = (),
        **unknown: Never,
    ) -> None:
        # Everything that can fail runs before Handler.__init__ registers the
        # handler for logging.shutdown(): a half-built handler is never flushed.
        if unknown:
            known = [n for n in inspect.signature(IngressHandler).parameters if n != "unknown"]
            raise unknown_keywords(type(self).__name__, unknown, known, _RENAMED)
        default_session_id = None if session_id is None else validate_session_id(session_id)
        if isinstance(formatter, str):
            formatter = logging.Formatter(formatter)
        elif formatter is not None and not isinstance(formatter, logging.Formatter):
            raise TypeError(
                f"formatter must be a logging.Formatter or a format string, "
                f"not {type(formatter).__name__}"
            )
        limits = Limits(max_message_length=max_message_length, max_string_length=max_string_length)
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
        settings: tuple[object, ...] = (url, token, base_api_url, plugins)
        if engine is not None and (any(v is not None for v in settings) or options.given()):
            raise TypeError("pass either engine= or the engine's settings, not both")
        #: The engine is a shared one this handler holds: its ``close()`` releases it.
        self._holds_engine = engine is None
        if engine is None:
            engine = shared_engine(
                url=url,
                token=token,
                base_api_url=base_api_url,
                plugins=plugins,
                options=options,
                close_timeout=close_timeout,
                hold=True,
            )
        super().__init__(level)
        if formatter is not None:
            self.setFormatter(formatter)
        self._engine: _Engine = engine
        self._default_session_id = default_session_id
        self._limits = limits
        self.flush_timeout = float(flush_timeout)
        self.close_timeout = 5.0 if close_timeout is None else float(close_timeout)
        self._ignored_prefixes = tuple(IGNORED_LOGGERS) + tuple(ignore_loggers)
        self._ignore_cache: dict[str, bool] = {}
        self._close_lock = threading.Lock()
        self._thread_flags = threading.local()
        self._closed = False
        self.last_flush_result: Any = None
        if diagnostics is None:
            diagnostics = default_diagnostics(plugins)
        self._diagnostics: DiagnosticSink = diagnostics
        self._drops = DropCounter(diagnostics)

    @property
    def engine(self) -> _Engine:
        """The delivery engine (for ``flush(timeout)`` results and ``stats()``)."""
        return self._engine

    @property
    def session_id(self) -> str | None:
        """The default session id."""
        return self._default_session_id

    def stats(self) -> Any:
        """The engine's health numbers (a ``delivery.Health``: submitted, delivered,
        retried, dropped, failed, in total and per session); ``engine.stats()``.

        Records this handler refused before they reached the engine (no or an
        invalid session id) are not in it: see :meth:`dropped`.
        """
        return self._engine.stats()

    def dropped(self) -> dict[str, int]:
        """Records this handler refused before the engine, by reason."""
        return self._drops.snapshot()

    # -- the caller's thread ----------------------------------------------

    def _ignored(self, name: str) -> bool:
        cached = self._ignore_cache.get(name)
        if cached is None:
            cached = any(
                name == prefix or name.startswith(prefix + ".") for prefix in self._ignored_prefixes
            )
            if len(self._ignore_cache) >= _CACHE_LIMIT:
                self._ignore_cache.clear()
            self._ignore_cache[name] = cached
        return cached

    def _on_worker(self) -> bool:
        """``engine.is_worker_thread()``, asked once per thread (a thread never changes sides)."""
        flag: bool | None = getattr(self._thread_flags, "worker", None)
        if flag is None:
            flag = self._thread_flags.worker = bool(self._engine.is_worker_thread())
        return flag

    def handle(self, record: logging.LogRecord) -> bool:
        """Refuse recursive records, apply filters, emit without taking the handler lock."""
        # The hot path, inlined: one dict lookup and one thread-local read.
        ignored = self._ignore_cache.get(record.name)
        if ignored is None:
            ignored = self._ignored(record.name)
        worker: bool | None = getattr(self._thread_flags, "worker", None)
        if worker is None:
            worker = self._on_worker()
        if ignored or worker:
            return False
        if self.filters:
            rv: object = self.filter(record)
            if not rv:
                return False
            if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace it
                record = rv
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Capture the record and hand it to the engine; never raises."""
        try:
            # getattr, not ``record.__dict__``: that would build the record's
            # attribute dict, which a plain record does not have until asked.
            session_id = getattr(record, "session_id", None)
            if session_id is None:
                session_id = SESSION_ID_VAR.get()
                if session_id is None:
                    session_id = self._default_session_id
                    if session_id is None:
                        self._drops.add(DROP_NO_SESSION)
                        return
            try:
                valid = validate_session_id(session_id)  # a dict lookup once seen
            except InvalidSessionIdError:
                self._drops.add(DROP_INVALID_SESSION)
                return
            # The engine builds inside a copy of this thread's context: the
            # span is read there.
            capture = RecordCapture(
                record, valid, formatter=self.formatter, limits=self._limits, span_on_build=True
            )
            size = ENTRY_OVERHEAD + len(capture.message) + len(capture.exc_text or "")
            self._engine.submit(valid, capture, record=record, size_hint=size)
        except Exception:
            _log.debug("IngressHandler.emit failed; the record is dropped", exc_info=True)
            self._drops.add(DROP_HANDLER_ERROR)

    # -- flush / close ----------------------------------------------------

    def flush(self) -> None:
        """Wait up to ``flush_timeout`` for everything submitted so far to be delivered.

        Returns at once on an engine worker thread (it cannot wait for
        itself). While this thread holds the logging module's lock
        (``dictConfig``/``fileConfig``) it waits at most one second, and
        stops after half a second without progress. The
        result of the wait is kept in ``last_flush_result`` (a
        ``FlushResult``); ``engine.flush(timeout)`` returns it directly.
        """
        self._flush(self.flush_timeout)

    def _flush(self, timeout: float) -> None:
        if self._on_worker():
            return
        try:
            if _module_lock_held():
                self.last_flush_result = self._flush_in_slices(timeout)
            else:
                self.last_flush_result = self._engine.flush(timeout)
        except Exception:
            self._drops.add(DROP_HANDLER_ERROR)

    def _flush_in_slices(self, timeout: float) -> Any:
        """Flush while this thread holds the module lock: wait while entries keep
        finishing (up to ``_LOCKED_BOUND``), give up after a slice without progress.

        The engine keeps its workers off that lock (warm level caches, diagnostics
        on their own thread), so normally everything is delivered before
        ``dictConfig`` returns; code outside the engine on the delivery path that
        still takes the lock costs one slice, not a deadlock.
        """
        # Every thread's logging waits on this lock: never hold it long.
        deadline = time.monotonic() + min(timeout, _LOCKED_BOUND)
        results: list[Any] = []
        while True:
            left = deadline - time.monotonic()
            result = self._engine.flush(max(0.0, min(_LOCKED_SLICE, left)))
            results.append(result)
            finished = sum(getattr(result, k, 0) for k in ("delivered", "failed", "dropped"))
            if not getattr(result, "timed_out", False) or left <= _LOCKED_SLICE or not finished:
                break
        last = results[-1]
        if len(results) == 1 or not dataclasses.is_dataclass(last) or isinstance(last, type):
            return last
        # What finished in every slice, and what is still pending after the last one.
        return dataclasses.replace(
            last,
            **{k: sum(getattr(r, k) for r in results) for k in ("delivered", "failed", "dropped")},
        )

    def close(self) -> None:
        """Flush (up to ``close_timeout``) and detach; a second call does nothing.

        The shared engine is retired with the last handler that holds it: it
        delivers what it holds, then closes, unless a new handler with the
        same settings takes it first (an OpenTelemetry exporter on it keeps it
        open until exit); an engine
        passed as ``engine=`` is its owner's to close. Records handed to a
        closed handler are still submitted; the engine decides (a closed
        engine counts them as dropped).
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._flush(self.close_timeout)
            if self._holds_engine:
                from .delivery import release_shared_engine

                release_shared_engine(self._engine)  # type: ignore[arg-type]
        except Exception:
            self._drops.add(DROP_HANDLER_ERROR)
        finally:
            super().close()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} session_id={self._default_session_id!r} ({level})>"


# It refuses the library's own records, so it never shows a diagnostic.
not_a_route(IngressHandler)
