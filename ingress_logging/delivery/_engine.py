"""``DeliveryEngine``: the one background deliverer every front door shares.

Shape (measured against the alternatives in ``docs/delivery.md``): callers
``submit`` into per-session FIFOs under one lock and return at once; up to
``max_concurrency`` daemon worker threads, started lazily, each pick a ready
session, run one step of it (at most one HTTP request, on one shared sync
``httpx.Client``) and book the result. Backoffs wait on a timer heap, not in
a thread. See ``_scheduler`` for ordering, ``_worker`` for a step,
``_reporter`` and ``_logsafe`` for why nothing here can deadlock on logging.

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
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import httpx
import pluggy

from .._host import Host
from .._session_id import validate_session_id
from ..protocol import RetryPolicy
from . import _exit
from ._budget import RetryBudget
from ._logsafe import warm_logging_caches
from ._pool import THREAD_PREFIX, WorkerPool, is_worker_thread
from ._reporter import Reporter
from ._retention import DEFAULT_MAX_IDLE_SESSIONS
from ._scheduler import DROPPED, TAKEN, Scheduler
from ._seams import RetryBudgetHook, Spool, Transport
from ._session import RUNNING, Item, estimate_size, fill_entry
from ._spool import DEFAULT_SPOOL_MAX_BYTES
from ._spool import Spool as SqliteSpool
from ._types import (
    DROP_CLOSED,
    DROP_PREPARE,
    OVERFLOW_POLICIES,
    Counts,
    FlushResult,
    Health,
    OverflowPolicy,
)

#: Seconds close() may take beyond its deadline to report its last drops.
_REPORT_FLOOR: Final = 0.25

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
        max_concurrency: worker threads, i.e. sessions with a request in
            flight at once.
        max_idle_sessions: idle sessions whose state is kept; beyond it the
            least recently used idle one is forgotten (its per-session
            numbers leave ``stats().sessions``; totals stay exact). Its chain
            head is kept apart (the last 100,000 evicted, ``_retention``), so
            its next entry still names the previous one as ``parentUuid``.
        close_timeout: deadline of the ``atexit`` close, and of ``flush()``
            and ``close()`` called without one.
        retry_budget: consulted before every retry (``_seams.RetryBudgetHook``);
            None (the default) builds an engine-wide ``RetryBudget()`` (issue 8,
            see docs/guarantees.md); pass ``NoRetryBudget()`` to switch it off.
        spool: a durable queue behind the in-memory one (``_seams.Spool``).
        spool_dir / spool_max_bytes: opt-in shortcut for ``spool``: a SQLite
            ``_spool.Spool`` in that directory, capped at ``spool_max_bytes``,
            with the same ``overflow`` policy and ``block_timeout``. Raises
            ``SpoolLockedError`` when another process or engine uses it.
        transport: a factory for the ``Transport`` (default: the sync client).
        timeout / http_client / allow_insecure_http: passed to the client.
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
        max_concurrency: int = 8,
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
    ) -> None:
        overflow = _overflow_name(overflow)
        for name, number in (
            ("max_queue_entries", max_queue_entries),
            ("max_queue_bytes", max_queue_bytes),
            ("max_concurrency", max_concurrency),
            ("max_idle_sessions", max_idle_sessions),
        ):
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f"{name} must be an int, not {type(number).__name__}")
        if max_queue_entries < 1 or max_queue_bytes < 1:
            raise ValueError("max_queue_entries and max_queue_bytes must be positive")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_idle_sessions < 0:
            raise ValueError("max_idle_sessions must not be negative")
        if block_timeout < 0 or close_timeout < 0:
            raise ValueError("block_timeout and close_timeout must not be negative")
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
        self._retry_policy = retry_policy
        self._budget: RetryBudgetHook = retry_budget if retry_budget is not None else RetryBudget()
        if spool is None and spool_dir is not None:
            spool = SqliteSpool(
                spool_dir, max_bytes=spool_max_bytes, policy=overflow, block_timeout=block_timeout
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
                )

        self._sched = Scheduler(
            max_entries=max_queue_entries,
            max_bytes=max_queue_bytes,
            overflow=overflow,
            block_timeout=block_timeout,
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
            max_concurrency=max_concurrency,
        )
        self._sched.retention.forget_head = self._pool.forget_head
        self._reset_process_state()
        self._closed = False
        os.register_at_fork(
            after_in_child=functools.partial(_call_weak, weakref.WeakMethod(self._after_fork))
        )
        _exit.keep_alive(self)  # closed at process end (atexit / multiprocessing)
        if spool is not None:
            for session_id, entry in spool.replay():
                self._resubmit(session_id, entry)

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._spool_lock = threading.Lock()
        #: Spool mode's chain (assigned at submit), an LRU (``_retention``'s caps).
        self._spool_parents: OrderedDict[str, str] = OrderedDict()

    def __repr__(self) -> str:
        s = self._sched
        return (
            f"DeliveryEngine(host={self._real_host!r}, overflow={s.overflow!r}, "
            f"max_queue_entries={s.max_entries}, max_queue_bytes={s.max_bytes}, "
            f"max_concurrency={self.max_concurrency}, closed={self._closed})"
        )

    # -- fork ---------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's queue, threads, locks and sockets."""
        self._sched.reinit()
        self._reporter.after_fork()
        self._spool = self._pool.spool = None  # the parent's; the child keeps memory only
        self._pool.reset()
        # The inherited client is neither used nor closed: its sockets are the parent's.
        self._reset_process_state()

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
        """
        self._check_pid()
        sched = self._sched
        if session_id not in sched.sessions:
            validate_session_id(session_id)
        size = size_hint if size_hint is not None else estimate_size(entry, record)
        if self._spool is not None and not self._closed:
            return self._submit_spooled(session_id, entry, record, size)
        return self._enqueue(session_id, entry, record, size, None)

    def _enqueue(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        record: object,
        size: int,
        spool_key: object,
    ) -> bool:
        sched = self._sched
        spawn = False
        evicted: list[object] = []
        # Builders and ``ingress_prepare_entry`` run on a worker, inside this
        # copy: a plugin enriching from the caller's context variables (a
        # request id, the current span) sees the caller's values. O(1).
        context = contextvars.copy_context() if spool_key is None else None
        with sched.lock:
            s = sched.session_locked(session_id)
            if self._closed:
                sched.count_drop_locked(s, DROP_CLOSED, gap=False)
                sched.note_idle_locked(s)
                accepted = False
            else:
                reason = sched.admit_locked(size, may_block=not is_worker_thread())
                if reason is not None:
                    sched.count_drop_locked(s, reason, gap=True)
                    sched.note_idle_locked(s)  # owes a gap now: kept, unless it was busy
                    accepted = False
                else:
                    item = Item(s, entry, record, size)
                    item.spool_key = spool_key
                    item.prepared = spool_key is not None
                    item.context = context
                    s.submitted += 1
                    sched.submitted += 1
                    if sched.enqueue_locked(s, item):
                        if sched.idle:
                            sched.work.notify()
                        elif sched.workers < self.max_concurrency:
                            sched.workers += 1
                            spawn = True
                    accepted = True
            evicted = sched.evicted_spool_keys
            if evicted:
                sched.evicted_spool_keys = []
        if spawn:
            self._pool.spawn()
        if self._spool is not None:
            if not accepted and spool_key is not None:
                self._spool.acknowledge(spool_key)
            for key in evicted:  # drop_oldest evicted spooled entries: delete their rows
                self._spool.acknowledge(key)
        return accepted

    def _submit_spooled(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        record: object,
        size: int,
    ) -> bool:
        """Spool mode: build, fill and prepare now, persist, then queue."""
        assert self._spool is not None
        with self._spool_lock:
            try:
                built = entry() if callable(entry) else entry
            except Exception:
                built = None
            if not isinstance(built, dict):
                return self._refuse(session_id, "build_error")
            fill_entry(built, session_id, self._spool_parents.get(session_id))
            prepared = self._host.prepare_entry(built, record)
            if prepared is None:
                return self._refuse(session_id, DROP_PREPARE)
            key = self._spool.accept(session_id, prepared)
            if key is None:
                return self._refuse(session_id, "spool_full")
            uuid = prepared.get("uuid")
            if isinstance(uuid, str) and uuid:
                self._set_spool_parent(session_id, uuid)
        return self._enqueue(session_id, prepared, record, size, key)

    def _resubmit(self, session_id: str, entry: dict[str, Any]) -> None:
        """Queue an entry an earlier run spooled: it was built, filled and
        prepared then (a redaction plugin must not run on it twice), and its row
        is already on disk (``accept`` returns that row's key)."""
        assert self._spool is not None
        key = self._spool.accept(session_id, entry)
        try:
            validate_session_id(session_id)
        except ValueError:  # a damaged row: it can name no session (counted, no gap)
            self._spool.acknowledge(key)
            with self._sched.lock:
                self._sched.count_drop_locked(None, "build_error", gap=False)
            return
        uuid = entry.get("uuid")
        if isinstance(uuid, str) and uuid:
            self._set_spool_parent(session_id, uuid)
        self._enqueue(session_id, entry, None, estimate_size(entry, None), key)

    def _set_spool_parent(self, session_id: str, uuid: str) -> None:
        parents = self._spool_parents
        parents[session_id] = uuid
        parents.move_to_end(session_id)
        retention = self._sched.retention
        if len(parents) > retention.max_heads + retention.max_idle:
            parents.popitem(last=False)  # its next entry: parentUuid null (docs/delivery.md)

    def _refuse(self, session_id: str, reason: str) -> bool:
        with self._sched.lock:
            s = self._sched.session_locked(session_id)
            self._sched.count_drop_locked(s, reason, gap=reason != DROP_PREPARE)
            self._sched.note_idle_locked(s)
        return False

    # -- flush / close -----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Wait until everything submitted before this call is delivered or failed.

        ``timeout`` (seconds; None: ``close_timeout``) bounds the wait; what
        is still on its way then is reported as ``pending``. Called on a
        delivery thread it cannot wait for itself and returns at once.
        """
        self._check_pid()
        limit = self.close_timeout if timeout is None else max(0.0, timeout)
        if is_worker_thread():
            limit = 0.0
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
        with self._sched.lock:
            if self._closed:
                return FlushResult()
            self._closed = True
        _exit.release(self)
        result = self.flush(limit)
        sched = self._sched
        with sched.lock:
            sched.stopping = True
            for s in sched.sessions.values():
                while s.queue:
                    item = s.queue.popleft()
                    item.state = TAKEN
                    sched.finish_item_locked(item, DROPPED, DROP_CLOSED)
                if s.current is not None and s.state != RUNNING:  # not on a worker now
                    sched.finish_item_locked(s.current, DROPPED, DROP_CLOSED)
                    s.pending = None
                    s.current_entry = None
            sched.work.notify_all()
            sched.space.notify_all()
            no_workers = sched.workers == 0
        # The drops just counted must reach the sinks before the process ends
        # (the exit summary reads them): a short floor, spent only if any are queued.
        self._reporter.stop(max(_REPORT_FLOOR, limit - (time.monotonic() - start)))
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
        with self._sched.lock:
            self.close_timeout = min(self.close_timeout, max(0.0, float(seconds)))

    @property
    def closed(self) -> bool:
        return self._closed

    # -- numbers -------------------------------------------------------------------

    def stats(self) -> Health:
        """Submitted, delivered, retried, dropped, failed: in total and per session."""
        self._check_pid()
        sched = self._sched
        with sched.lock:
            sessions = {
                sid: Counts(s.submitted, s.delivered, s.retried, s.dropped, s.failed)
                for sid, s in sched.sessions.items()
            }
            health = Health(
                submitted=sched.submitted,
                delivered=sched.delivered,
                retried=sched.retried,
                dropped=sched.dropped,
                failed=sched.failed,
                sessions=sessions,
                dropped_by_reason=dict(sched.dropped_by),
                failed_by_reason=dict(sched.failed_by),
                queued_entries=sched.entries,
                queued_bytes=sched.bytes,
                in_flight=sum(1 for s in sched.sessions.values() if s.current is not None),
                gaps_written=sched.gaps,
                workers=sched.workers,
            )
        snapshot = getattr(self._budget, "snapshot", None)
        if callable(snapshot):
            health = _with_budget(health, snapshot())
        spool_stats = getattr(self._spool, "stats", None)
        if callable(spool_stats):
            health = replace(health, spool=spool_stats())
        return health

    def is_worker_thread(self) -> bool:
        """True on a delivery thread: records emitted there must never be shipped."""
        return is_worker_thread()


def _overflow_name(value: object) -> OverflowPolicy:
    """The policy named by ``value``; spellings from config files are accepted
    (``"drop-oldest"``, ``"DROP_OLDEST"``, ``"drop oldest"``)."""
    if isinstance(value, str):
        name = value.strip().lower().replace("-", "_").replace(" ", "_")
        for policy in OVERFLOW_POLICIES:
            if name == policy:
                return policy
    raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {value!r}")


def _with_budget(health: Health, budget: object) -> Health:
    return replace(health, retry_budget=budget)
