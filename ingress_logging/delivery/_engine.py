"""``DeliveryEngine``: the one background deliverer every front door shares.

Shape (measured against the alternatives in ``docs/delivery.md``): callers
``submit`` into per-session FIFOs under one lock and return at once; daemon
worker threads, started lazily (as many as the adaptive limit of ``_limit``
allows, at most ``max_concurrency``), each pick a ready session, run one step
of it (one request, or one pipelined window, through one shared client) and
book the result. Backoffs wait on a timer heap, not in
a thread. See ``_scheduler`` for ordering and every number, ``_step`` for
a step, ``_reporter`` and ``_logsafe`` for why nothing here can deadlock on
logging, and ``_reentry`` for logging that re-enters ``submit`` on the same
thread (a signal handler, a ``__del__`` run by the GC).

Lifecycle: ``flush(timeout)`` waits for what was outstanding when it was
called; ``close(timeout)`` flushes, abandons the rest (counted as dropped,
reason ``closed``) and stops; an ``atexit`` hook closes with
``close_timeout``. Fork: the child resets everything (new locks, empty
queues, zeroed numbers, no threads, no connections) - the parent's queued
entries are the parent's to deliver - and starts its own workers lazily.

Memory per session: idle sessions beyond ``max_idle_sessions`` are forgotten
(least recently used first, see ``_retention``); their chain heads are kept
in a second LRU so a returning session still chains without a 409 round trip.
"""

from __future__ import annotations

import contextvars
import functools
import os
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

import httpx
import pluggy

from .._host import Host
from .._session_id import validate_session_id
from ..protocol import DEFAULT_WINDOW, RetryPolicy
from . import _exit, _reentry
from ._budget import RetryBudget
from ._logsafe import warm_logging_caches
from ._options import check_conflicts, check_numbers, overflow_name
from ._pool import WorkerPool
from ._reporter import Reporter
from ._retention import DEFAULT_MAX_IDLE_SESSIONS
from ._scheduler import REFUSED, Scheduler
from ._seams import RetryBudgetHook, Spool, Transport
from ._session import Prepared, estimate_size
from ._spool import DEFAULT_SPOOL_MAX_BYTES
from ._spool import Spool as SqliteSpool
from ._spooled import SpooledSubmit
from ._threads import THREAD_PREFIX, is_worker_thread
from ._types import (
    DROP_PREPARE,
    DROP_REENTRANT,
    FlushResult,
    Health,
    OverflowPolicy,
)

__all__ = ["DeliveryEngine", "is_worker_thread"]

MiB: Final = 1024 * 1024


def _call_weak(ref: Callable[[], Callable[[], Any] | None]) -> None:
    method = ref()
    if method is not None:
        method()


class DeliveryEngine:
    """Deliver entries per session, in order, from background threads.

    Args:
        url_template / token / base_api_url / plugins: build the ``PluginHost``
            when ``host`` is not given (see ``ingress_logging.plugins``).
        host: the ``Host`` to ask for tokens, URLs, headers, diagnostics and
            entry preparation.
        retry_policy: attempts and backoff per entry (``RetryPolicy``).
        max_queue_entries / max_queue_bytes: the memory cap (queued plus in
            flight); bytes are estimated at submit (``_session.estimate_size``)
            and corrected to the serialised size on the worker.
        overflow: ``drop_newest`` (refuse the new entry), ``drop_oldest``
            (evict the oldest queued entry) or ``block`` (wait up to
            ``block_timeout`` seconds for room, then refuse).
        max_concurrency: the cap on worker threads, i.e. on sessions with a
            request in flight at once. Below it the engine adapts the number
            to the latency (``_limit``): up to the cap across a slow network,
            a few on loopback; a step waiting on a slow server beyond a few
            usual latencies holds back no other session.
        max_idle_sessions: idle sessions whose state is kept; beyond it the
            least recently used idle one is forgotten (its per-session
            numbers leave ``stats().sessions``; totals stay exact). Its chain
            head is kept apart (the last 100,000 evicted, ``_retention``), so
            its next entry still names the previous one as ``parentUuid``.
        close_timeout: deadline of the ``atexit`` close, and of ``flush()``
            and ``close()`` called without one.
        retry_budget: consulted before every retry (``_seams.RetryBudgetHook``);
            None (the default) builds an engine-wide ``RetryBudget()`` (see
            docs/guarantees.md); pass ``NoRetryBudget()`` to switch it off.
        spool: a durable queue behind the in-memory one (``_seams.Spool``).
        spool_dir / spool_max_bytes: opt-in shortcut for ``spool``: a SQLite
            ``_spool.Spool`` in that directory, capped at ``spool_max_bytes``,
            with the same ``overflow`` policy and ``block_timeout``. Raises
            ``SpoolLockedError`` when another process or engine uses it.
        transport: a factory for the ``Transport`` (default: the sync client).
        timeout / http_client / allow_insecure_http: passed to the client.
        pipeline_window: appends of one session in flight at once on one
            keep-alive connection (``protocol.AppendWindow``; default 16,
            docs/delivery.md); 1 sends one at a time. Pipelining needs the
            client's own connections: with ``http_client=`` or a proxy
            variable it is off.
    """

    def __init__(
        self,
        *,
        url_template: str | None = None,
        token: str | Callable[[], str | None] | None = None,
        base_api_url: str | None = None,
        plugins: pluggy.PluginManager | None = None,
        host: Host | None = None,
        retry_policy: RetryPolicy | None = None,
        max_queue_entries: int = 10_000,
        max_queue_bytes: int = 16 * MiB,
        overflow: OverflowPolicy = "drop_newest",
        block_timeout: float = 1.0,
        max_concurrency: int = 64,
        max_idle_sessions: int = DEFAULT_MAX_IDLE_SESSIONS,
        close_timeout: float = 5.0,
        retry_budget: RetryBudgetHook | None = None,
        spool: Spool | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        transport: Callable[[Host], Transport] | None = None,
        timeout: float | httpx.Timeout | None = None,
        http_client: httpx.Client | None = None,
        allow_insecure_http: bool = False,
        pipeline_window: int = DEFAULT_WINDOW,
    ) -> None:
        overflow = overflow_name(overflow)
        if isinstance(pipeline_window, bool) or not isinstance(pipeline_window, int):
            raise TypeError(f"pipeline_window must be an int, not {type(pipeline_window).__name__}")
        if pipeline_window < 1:
            raise ValueError("pipeline_window must be at least 1")
        check_numbers(
            max_queue_entries=max_queue_entries,
            max_queue_bytes=max_queue_bytes,
            max_concurrency=max_concurrency,
            max_idle_sessions=max_idle_sessions,
            block_timeout=block_timeout,
            close_timeout=close_timeout,
        )
        check_conflicts(
            host=host,
            host_settings={
                "url_template": url_template,
                "token": token,
                "base_api_url": base_api_url,
                "plugins": plugins,
            },
            spool=spool,
            spool_dir=spool_dir,
            transport=transport,
            client_settings={
                "retry_policy": retry_policy,
                "timeout": timeout,
                "http_client": http_client,
                "allow_insecure_http": allow_insecure_http or None,
            },
        )
        if host is None:
            from ..plugins import PluginHost

            host = PluginHost(
                plugins, token=token, url_template=url_template, base_api_url=base_api_url
            )
        from ._transport import ClientTransport, DeferredHost

        self._real_host = host
        self._reporter = Reporter(host.diagnostic, name=f"{THREAD_PREFIX}.diagnostics")
        self._host: Host = DeferredHost(host, self._reporter)
        self.max_concurrency = max_concurrency
        self.close_timeout = close_timeout
        self._budget: RetryBudgetHook = retry_budget if retry_budget is not None else RetryBudget()
        if spool_dir is not None:
            spool = SqliteSpool(
                spool_dir,
                max_bytes=spool_max_bytes,
                policy=overflow,
                block_timeout=block_timeout,
                on_reset=self._reporter.event,
            )
        self._spool = spool
        if transport is None:

            def transport(h: Host) -> Transport:
                return ClientTransport(
                    h,
                    retry_policy=retry_policy,
                    timeout=timeout,
                    allow_insecure_http=allow_insecure_http,
                    http_client=http_client,
                    max_connections=max_concurrency,
                    window=pipeline_window,
                )

        self._sched = Scheduler(
            max_entries=max_queue_entries,
            max_bytes=max_queue_bytes,
            overflow=overflow,
            block_timeout=block_timeout,
            max_workers=max_concurrency,
            reporter=self._reporter,
            max_idle_sessions=max_idle_sessions,
        )
        self._pool = WorkerPool(
            self._sched,
            host=self._host,
            transport_factory=transport,
            budget=self._budget,
            reporter=self._reporter,
            spool=spool,
        )
        self._pid = os.getpid()
        self._spooled: SpooledSubmit | None = None
        if spool is not None:
            retention = self._sched.retention
            self._spooled = SpooledSubmit(
                spool,
                host=self._host,
                enqueue=self._enqueue,
                refuse=self._refuse_spooled,
                max_parents=retention.max_heads + retention.max_idle,
            )
        os.register_at_fork(
            after_in_child=functools.partial(_call_weak, weakref.WeakMethod(self._after_fork))
        )
        _exit.keep_alive(self)  # closed at process end (atexit / multiprocessing)
        if self._spooled is not None:
            self._spooled.replay()

    def __repr__(self) -> str:
        s = self._sched
        return (
            f"DeliveryEngine(host={self._real_host!r}, overflow={s.caps.overflow!r}, "
            f"max_queue_entries={s.caps.max_entries}, max_queue_bytes={s.caps.max_bytes}, "
            f"max_concurrency={self.max_concurrency}, closed={s.closed})"
        )

    # -- fork ---------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's queue, threads, locks and sockets."""
        self._sched.reinit()
        self._reporter.after_fork()
        self._spool = self._pool.spool = None  # the parent's; the child keeps memory only
        self._spooled = None
        self._pool.reset()
        _reentry.after_fork()
        # The inherited client is neither used nor closed: its sockets are the parent's.
        self._pid = os.getpid()

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # a fork the at-fork hook did not see
            self._after_fork()

    # -- submit ---------------------------------------------------------------

    def submit(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        record: object | None = None,
        size_hint: int | None = None,
    ) -> bool:
        """Queue one entry for ``session_id``; False when it was dropped (counted).

        Never waits for the network; only the ``block`` overflow policy
        waits, at most ``block_timeout``. ``entry`` is a dict (the engine
        owns it from now on) or a zero-argument builder called on a worker,
        in the session's order. Raises ``InvalidSessionIdError`` for an id
        that cannot name a session (nothing is queued).

        Called again on the same thread while a call is inside the engine (a
        signal handler or a ``__del__`` that logs), the call takes no lock: the
        entry waits on a per-thread list and the outer call queues it on its
        way out (``_reentry``), so it still lands after the outer entry.
        """
        if not self._sched.known(session_id):
            validate_session_id(session_id)
        # ``with _reentry.guard()``, inlined: this runs once per record.
        # No ``_check_pid()`` either: the at-fork hook resets a forked child.
        state = _reentry.THREAD_STATE
        if state.depth:
            return _reentry.defer(
                self._deferred_submit,
                session_id,
                entry,
                record,
                size_hint,
                refuse=self._refuse_reentrant,
            )
        state.depth = 1
        try:
            size = size_hint if size_hint is not None else estimate_size(entry, record)
            if self._spool is not None and not self._sched.closed:
                return self._submit_spooled(session_id, entry, record, size)
            return self._enqueue(session_id, entry, record, size, None)
        finally:
            state.depth = 0
            if state.deferred or state.overflow:
                _reentry.drain(state)

    def _deferred_submit(
        self, session_id: str, entry: object, record: object, size_hint: object
    ) -> None:
        self.submit(session_id, entry, record=record, size_hint=size_hint)  # type: ignore[arg-type]

    def _refuse_reentrant(self, count: int) -> None:
        for _ in range(count):
            self._sched.refuse(None, DROP_REENTRANT, gap=False)

    def _enqueue(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        record: object,
        size: int,
        spool_key: object,
        *,
        filled_parent: bool = False,
    ) -> bool:
        # Builders and ``ingress_prepare_entry`` run on a worker, inside this
        # copy: a plugin enriching from the caller's context variables (a
        # request id, the current span) sees the caller's values. O(1).
        context = contextvars.copy_context() if spool_key is None else None

        if spool_key is None:
            prepared = Prepared.NO
        else:
            prepared = Prepared.FILLED if filled_parent else Prepared.YES
        spawn = self._sched.submit(
            session_id,
            entry,
            record,
            size,
            context=context,
            spool_key=spool_key,
            prepared=prepared,
            may_block=not is_worker_thread(),
        )
        if spawn > 0:
            self._pool.spawn(spawn)
        if self._spool is not None:
            if spawn == REFUSED and spool_key is not None:
                self._spool.acknowledge(spool_key)
            for key in self._sched.take_evicted_keys() or ():  # drop_oldest evicted them
                self._spool.acknowledge(key)
        return spawn != REFUSED

    def _submit_spooled(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        record: object,
        size: int,
    ) -> bool:
        """Spool mode (``_spooled``): build, fill and prepare now, persist, then queue."""
        assert self._spooled is not None
        return self._spooled.submit(session_id, entry, record, size)

    def _refuse_spooled(self, session_id: str | None, reason: str) -> None:
        self._sched.refuse(
            session_id, reason, gap=session_id is not None and reason != DROP_PREPARE
        )

    # -- flush / close -----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Wait until everything submitted before this call is delivered or failed.

        ``timeout`` (seconds; None: ``close_timeout``) bounds the wait; what
        is still on its way then is reported as ``pending``. Called on a
        delivery thread, from inside the engine on the same thread (a signal
        handler), or after ``close()`` (whose deadline is spent), it does not
        wait.
        """
        self._check_pid()
        limit = self.close_timeout if timeout is None else max(0.0, timeout)
        if is_worker_thread() or self._sched.closed:
            limit = 0.0
        with _reentry.guard() as outer:
            if not outer:
                return FlushResult(timed_out=True)
            warm_logging_caches()
            self._reporter.kick()
            return self._sched.wait_outstanding(limit)

    def close(self, timeout: float | None = None) -> FlushResult:
        """Flush (bounded by ``timeout``), then stop; later submits are dropped.

        Entries still queued at the deadline are dropped with reason
        ``closed`` (counted and reported). Idempotent: a second call returns
        an empty result at once.
        """
        self._check_pid()
        start = time.monotonic()
        limit = self.close_timeout if timeout is None else max(0.0, timeout)
        if not self._sched.close_gate():
            return FlushResult()
        _exit.release(self)
        # A tenth of the deadline is kept for the reporter to say what close
        # abandoned (the ``closed`` drops): the whole stays within ``timeout``.
        with _reentry.guard() as outer:
            result = self._sched.wait_outstanding(0.9 * limit if outer else 0.0)
        no_workers = self._sched.stop()
        self._reporter.stop(max(0.0, limit - (time.monotonic() - start)))
        if no_workers:
            self._pool.close_transport()
        if self._spool is not None:
            self._spool.close()
        return result

    def limit_close_timeout(self, seconds: float) -> None:
        """Shorten the exit deadline (and ``flush()``'s default) to ``seconds``.

        A front door on a shared engine asks for its own ``close_timeout``;
        the shortest asked wins, so an app that set one never waits longer
        at exit than it said, whichever front door it set it on.
        """
        self.close_timeout = min(self.close_timeout, max(0.0, float(seconds)))

    @property
    def closed(self) -> bool:
        return self._sched.closed

    # -- numbers -------------------------------------------------------------------

    def stats(self) -> Health:
        """Submitted, delivered, retried, dropped, failed: in total and per session.

        Raises RuntimeError when called from inside the engine on the same
        thread (a signal handler interrupting ``submit``): the numbers are
        being changed under it.
        """
        self._check_pid()
        with _reentry.guard() as outer:
            if not outer:
                raise RuntimeError("stats() called from inside the engine on the same thread")
            spool = self._spool
            return self._sched.snapshot(
                retry_budget=self._budget.snapshot(),
                spool=spool.stats() if spool is not None else None,
                pipeline_fallbacks=self._pool.pipeline_fallbacks(),
            )

    def is_worker_thread(self) -> bool:
        """True on a delivery thread: records emitted there must never be shipped."""
        return is_worker_thread()
