"""The worker threads: started when the scheduler asks, loop step -> book, share one transport.

A worker asks the scheduler for its next session (``Scheduler.next``, which
also books the previous step's result and says how many more workers the
ready sessions need), runs one step outside any lock, and asks again. Workers
are daemon threads named ``ingress_logging.delivery.worker-N``;
``is_worker_thread()`` is True on them (``_threads``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from .._host import Host
from ._reporter import Reporter
from ._scheduler import Scheduler
from ._seams import RetryBudgetHook, Spool, Transport
from ._session import SessionState
from ._step import Step, Stepper
from ._threads import THREAD_PREFIX, enter_engine_thread

__all__ = ["WorkerPool"]


class WorkerPool:
    """Up to ``max_workers`` threads over one scheduler and one transport."""

    def __init__(
        self,
        sched: Scheduler,
        *,
        host: Host,
        transport_factory: Callable[[Host], Transport],
        budget: RetryBudgetHook,
        reporter: Reporter,
        spool: Spool | None,
    ) -> None:
        self._sched = sched
        self.spool = spool
        self._host = host
        self._factory = transport_factory
        self._stepper = Stepper(
            host=host,
            transport=self.transport,
            budget=budget,
            reporter=reporter,
            gap_snapshot=sched.gap_snapshot,
            take_batch=sched.take_batch,
        )
        budget.set_wakeup(sched.wake_held)
        budget.set_diagnostics(reporter.event)
        sched.retention.forget_head = self.forget_head
        self.reset()

    def reset(self) -> None:
        """Construction, and a forked child: no threads, no transport, new lock."""
        self._transport: Transport | None = None
        self._transport_lock = threading.Lock()
        self._started = 0

    # -- threads -------------------------------------------------------------

    def spawn(self, count: int) -> None:
        """Start ``count`` workers (the scheduler counted them already)."""
        for _ in range(count):
            self._started += 1
            thread = threading.Thread(
                target=self._main, name=f"{THREAD_PREFIX}.worker-{self._started}", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: existing workers carry on
                self._sched.spawn_failed()

    def _main(self) -> None:
        enter_engine_thread()
        sched = self._sched
        sched.worker_started()
        stepper = self._stepper
        s: SessionState | None = None
        step: Step | None = None
        wakeups = 0
        try:
            while True:
                spool = self.spool
                if spool is not None and s is not None and step is not None:
                    # Delete the spool rows *before* booking the items as done, so
                    # that once flush() says delivered, the rows are gone too (this
                    # worker holds ``s``, so ``s.current`` is stable here).
                    item = s.current
                    if step.kind and item is not None and item.spool_key is not None:
                        spool.acknowledge(item.spool_key)
                    for done, _, _ in step.finished or ():
                        if done.spool_key is not None:
                            spool.acknowledge(done.spool_key)
                s, wakeups, spawn = sched.next(s, step, wakeups)
                if spawn:
                    self.spawn(spawn)
                if s is None:
                    return
                step = stepper.step(s)
        finally:
            last = sched.worker_exited()
            if last and sched is self._sched:
                self.close_transport()

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

    def pipeline_fallbacks(self) -> int:
        """Servers the transport sends one append at a time because they reordered."""
        transport = self._transport
        return 0 if transport is None else transport.pipeline_fallbacks

    def forget_head(self, session_id: str) -> None:
        """The engine forgot this session's chain head: so does the transport
        (its ``Last-Uuid`` map would grow instead); the next entry finds the
        head through the protocol's 409 recovery. Called under the
        scheduler's lock: O(1), no I/O."""
        transport = self._transport
        if transport is not None:
            transport.forget(session_id)

    def close_transport(self) -> None:
        with self._transport_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(Exception):  # closing sockets must not fail close()
                transport.close()
