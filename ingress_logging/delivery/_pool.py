"""The worker threads: start lazily, loop pick -> step -> book, share one transport.

A worker holds the scheduler's lock only to book the result of a step and to
pick its next session; the step itself (building, the HTTP request) runs
outside it. Workers are daemon threads named ``ingress_logging.delivery.
worker-N``; ``is_worker_thread()`` is True on them (and on the reporter), so
front doors never ship records emitted there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Final

from opentelemetry import context as otel_context

from .._host import Host
from ._reporter import Reporter
from ._scheduler import DONE, DROPPED, Scheduler
from ._seams import RetryBudgetHook, Spool, Transport
from ._session import SessionState
from ._types import DROP_CLOSED
from ._worker import Step, Stepper

__all__ = ["THREAD_PREFIX", "WorkerPool", "enter_engine_thread", "is_worker_thread"]

THREAD_PREFIX: Final = "ingress_logging.delivery"

_local = threading.local()


def enter_engine_thread() -> None:
    """Mark this thread as the engine's and switch OpenTelemetry instrumentation off.

    The mark is a thread-local flag, so ``is_worker_thread()`` - asked by the
    front doors on every record - costs one attribute lookup, not a
    ``threading.current_thread()`` name comparison.

    With an httpx instrumentation and ``IngressSpanExporter`` active, every
    delivery request would create a span, exported and delivered by another
    request, without end. OpenTelemetry's own exporters run under this key
    (``BatchProcessor``); so do our threads. The context is attached for the
    thread's whole life and never detached: the thread owns it.
    """
    _local.worker = True
    otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))


def is_worker_thread() -> bool:
    """True on any thread of any delivery engine (workers and the reporter)."""
    return getattr(_local, "worker", False)


class WorkerPool:
    """Up to ``max_concurrency`` workers over one scheduler and one transport."""

    def __init__(
        self,
        sched: Scheduler,
        *,
        host: Host,
        transport_factory: Callable[[Host], Transport],
        budget: RetryBudgetHook,
        reporter: Reporter,
        spool: Spool | None,
        max_concurrency: int,
    ) -> None:
        self.sched = sched
        self.max_concurrency = max_concurrency
        self.spool = spool
        self._host = host
        self._factory = transport_factory
        self.stepper = Stepper(
            host=host,
            transport=self.transport,
            budget=budget,
            reporter=reporter,
            gap_snapshot=self._gap_snapshot,
        )
        budget.set_wakeup(self._budget_wakeup)
        set_diagnostics = getattr(budget, "set_diagnostics", None)
        if callable(set_diagnostics):  # RetryBudget: report each time it closes
            set_diagnostics(reporter.event)
        self.reset()

    def reset(self) -> None:
        """Construction, and a forked child: no threads, no transport, new lock."""
        self._transport: Transport | None = None
        self._transport_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- threads -------------------------------------------------------------

    def spawn(self) -> None:
        """Start one worker (the caller already counted it in ``sched.workers``)."""
        n = len(self._threads) + 1
        thread = threading.Thread(
            target=self._main, name=f"{THREAD_PREFIX}.worker-{n}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: existing workers carry on
            with self.sched.lock:
                self.sched.workers -= 1
            return
        self._threads.append(thread)

    def _main(self) -> None:
        enter_engine_thread()
        sched = self.sched
        stepper = self.stepper
        s: SessionState | None = None
        step: Step | None = None
        wakeups = 0
        try:
            while True:
                spool = self.spool
                if spool is not None and s is not None and step is not None and step.kind:
                    # Delete the spool row *before* booking the item as done, so
                    # that once flush() says delivered, the row is gone too (this
                    # worker owns ``s``, so ``s.current`` is stable here).
                    item = s.current
                    if item is not None and item.spool_key is not None:
                        spool.acknowledge(item.spool_key)
                with sched.lock:
                    if s is not None and step is not None:
                        s = self._book_locked(s, step, wakeups)
                    if s is None:
                        s = sched.pick_locked()
                    if s is None:
                        return
                    wakeups = sched.budget_wakeups
                step = stepper.step(s)
        finally:
            with sched.lock:
                sched.workers -= 1
                last = sched.workers == 0 and sched.stopping
            if last and sched is self.sched:
                self.close_transport()

    def _book_locked(self, s: SessionState, step: Step, wakeups: int) -> SessionState | None:
        """Book one step's result; return the session to run next, if any.

        ``wakeups``: ``sched.budget_wakeups`` when the step began.
        """
        sched = self.sched
        item = s.current
        s.held = step.held
        if step.retried:
            s.retried += 1
            sched.retried += 1
        if step.body_size and item is not None and item.state != DONE:
            sched.bytes += step.body_size - item.size  # the estimate, corrected
            item.size = step.body_size
        if step.gap_written is not None:
            _, count, reasons = step.gap_written
            s.gap_count -= count
            for reason, n in reasons.items():
                left = s.gap_reasons.get(reason, 0) - n
                if left > 0:
                    s.gap_reasons[reason] = left
                else:
                    s.gap_reasons.pop(reason, None)
            sched.gaps += 1
        if item is not None:
            if step.kind is not None:
                sched.finish_item_locked(item, step.kind, step.reason)
            elif sched.stopping:
                sched.finish_item_locked(item, DROPPED, DROP_CLOSED)
        wait = step.wait
        if step.held and sched.budget_wakeups != wakeups:
            wait = 0.0  # the budget re-opened while this step was held back: ask again now
        return sched.release_locked(s, wait)

    def _gap_snapshot(self, s: SessionState) -> tuple[int, dict[str, int]]:
        with self.sched.lock:
            return s.gap_count, dict(s.gap_reasons)

    def _budget_wakeup(self) -> None:
        with self.sched.lock:
            self.sched.wake_budget_waiters_locked()

    # -- transport -----------------------------------------------------------

    def transport(self) -> Transport:
        """The shared transport, created on first use (and again in a forked child)."""
        transport = self._transport
        if transport is None:
            with self._transport_lock:
                transport = self._transport
                if transport is None:
                    transport = self._transport = self._factory(self._host)
        return transport

    def forget_head(self, session_id: str) -> None:
        """The engine forgot this session's chain head: the transport forgets its
        ``Last-Uuid`` too, or its map would grow without bound (the next entry
        then finds the head through the protocol's 409 recovery). Called under
        the scheduler's lock: O(1), no I/O. A transport without ``forget`` keeps
        its own map (``_seams.Transport`` does not require it)."""
        forget = getattr(self._transport, "forget", None)
        if callable(forget):
            with contextlib.suppress(Exception):  # never out through a worker's booking
                forget(session_id)

    def close_transport(self) -> None:
        with self._transport_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(Exception):  # closing sockets must not fail close()
                transport.close()
