"""Who runs next: the one owner of the engine's delivery state.

Per-session FIFOs, the ready deque and the timer heap live here, with what
the scheduler owns and uses under its one lock: ``Admission`` (the memory
caps and the overflow policy), ``Workforce`` (worker counts, the steps in
flight and the adaptive limit on them) and ``Tally`` (the totals). Three
conditions on the lock: ``_work`` (idle workers wait for a ready session,
the next timer or an overdue step), ``_space`` (``block`` overflow waits for
room) and ``_done`` (``flush`` waits for its items). The engine, the pool and
the workers call methods, each one critical section.

Workers are the scheduler: there is no scheduler thread, so an entry costs one
hand-off (caller -> worker), not two. A worker holds the lock only to book the
result of a step and pick its next session; the network I/O runs outside it.

Order and independence: a session is held by at most one worker at a time
(``Phase.RUNNING``), and a session in backoff sits on the timer heap
(``WAITING``) holding no worker, so its 8-second wait delays nobody else.
Whether a session may run is asked in one place (``_runnable``).

Nothing here calls out while state is half-updated: no sink, no logging, no
user code runs under the lock (the reporter only enqueues; see ``_engine``
for the same-thread re-entry of ``submit`` from a signal handler or a
``__del__``).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from ._admission import Admission
from ._flush import wait_for_items
from ._reporter import Reporter
from ._retention import SessionRetention
from ._session import Item, ItemState, Phase, Prepared, SessionState
from ._step import Step
from ._tally import Tally
from ._timers import TimerHeap
from ._types import (
    DROP_CLOSED,
    DROP_EVICTED,
    NO_GAP_REASONS,
    FlushResult,
    Health,
    Outcome,
    OverflowPolicy,
)
from ._workforce import Workforce

__all__ = ["REFUSED", "Scheduler"]

#: ``Scheduler.submit``: the entry was not queued (counted as dropped).
REFUSED: Final = -1


class Scheduler:
    """The engine's state, behind one lock; every public method is one critical section."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        overflow: OverflowPolicy,
        block_timeout: float,
        max_workers: int,
        reporter: Reporter,
        max_idle_sessions: int,
    ) -> None:
        self.caps = Admission(
            max_entries=max_entries,
            max_bytes=max_bytes,
            overflow=overflow,
            block_timeout=block_timeout,
        )
        self.crew = Workforce(max_workers)
        self._reporter = reporter
        self.retention = SessionRetention(max_idle_sessions)
        self.reinit()

    def reinit(self) -> None:
        """Fresh lock and empty state (construction, and a forked child)."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._sessions: dict[str, SessionState] = {}
        self.retention.reset()
        self._ready: deque[SessionState] = deque()
        self._timers = TimerHeap()
        self.caps.reset()
        self.crew.reset()
        self._closed = False  # close() began: submits are refused
        self._stopping = False  # close() gave up waiting: workers leave
        self._tally = Tally()
        #: Times the retry budget re-opened: a step held back before the latest
        #: wakeup must not book that hold (``wake_held``).
        self._budget_wakeups = 0

    # -- submit side -------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close_gate(self) -> bool:
        """Refuse submits from now on; False when it was closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._space.notify_all()
            return True

    def known(self, session_id: str) -> bool:
        """A session id seen before (already validated). Lock-free read of a dict."""
        return session_id in self._sessions

    def submit(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        record: object,
        size: int,
        *,
        context: contextvars.Context | None,
        spool_key: object,
        prepared: Prepared,
        may_block: bool,
    ) -> int:
        """Admit, look up the session and enqueue, in one critical section.

        Returns ``REFUSED``, or how many workers the caller should start.
        Admission comes first and may wait (``block``) with the lock released;
        the session is looked up after it, so an idle-session eviction during
        the wait can never leave the item in a forgotten state.
        """
        with self._lock:
            if self._closed:
                self._refuse_locked(session_id, DROP_CLOSED, gap=False)
                return REFUSED
            reason = self.caps.admit(
                size,
                may_block=may_block,
                space=self._space,
                evict_oldest=self._evict_oldest_locked,
                closed=lambda: self._closed,
            )
            if reason is None and self.closed:  # closed while this submit waited for room
                reason = DROP_CLOSED
            if reason is not None:
                self._refuse_locked(session_id, reason, gap=reason != DROP_CLOSED)
                return REFUSED
            s = self._session_locked(session_id)
            item = Item(s, entry, record, size)
            item.context = context
            item.spool_key = spool_key
            item.prepared = prepared
            s.submitted += 1
            self._tally.submitted += 1
            self._enqueue_locked(s, item)
            return self._dispatch_locked() if self._ready else 0

    def take_evicted_keys(self) -> list[object] | None:
        """Spool rows of entries ``drop_oldest`` evicted since the last call (to delete)."""
        if not self.caps.evicted_keys:
            return None
        with self._lock:
            keys, self.caps.evicted_keys = self.caps.evicted_keys, []
            return keys

    def refuse(self, session_id: str | None, reason: str, *, gap: bool) -> None:
        """A submit refused before the queue (build error, a plugin, a full spool)."""
        with self._lock:
            self._refuse_locked(session_id, reason, gap=gap)

    def _session_locked(self, session_id: str) -> SessionState:
        s = self._sessions.get(session_id)
        if s is None:
            s = self._sessions[session_id] = SessionState(session_id)
            self.retention.restore(s)  # evicted earlier: its chain head
        return s

    def _note_idle_locked(self, s: SessionState) -> None:
        unmarked = self.retention.note_idle(s, self._sessions)
        if unmarked:
            self._tally.gaps_unmarked += unmarked
            self._reporter.unmarked(unmarked)

    def _enqueue_locked(self, s: SessionState, item: Item) -> None:
        if s.drop_gap:
            item.gap, s.drop_gap = s.drop_gap, None
        s.queue.append(item)
        self.caps.charge(item)
        if s.phase is Phase.IDLE:
            s.phase = Phase.READY
            self._ready.append(s)
            self.retention.busy(s)

    def _evict_oldest_locked(self) -> bool:
        item = self.caps.oldest_queued()
        if item is None:
            return False
        s = item.session
        # The oldest queued item overall is the oldest queued one of its session.
        assert s.queue[0] is item
        s.queue.popleft()
        item.state = ItemState.TAKEN
        if item.spool_key is not None:
            # Its spool row must go too, or the next start would deliver it
            # after the newer entries of its session (the engine deletes it).
            self.caps.evicted_keys.append(item.spool_key)
        # The loss sits where the item sat: before the next queued entry.
        carried = dict(item.gap or {})
        carried[DROP_EVICTED] = carried.get(DROP_EVICTED, 0) + 1
        item.gap = None
        if s.queue:
            nxt = s.queue[0]
            if nxt.gap is None:
                nxt.gap = {}
            for reason, count in carried.items():
                nxt.gap[reason] = nxt.gap.get(reason, 0) + count
        else:
            s.note_dropped_after_queue(carried)
        self._finish_locked(item, Outcome.DROPPED, DROP_EVICTED, gap=False)
        return True

    def _refuse_locked(self, session_id: str | None, reason: str, *, gap: bool) -> None:
        self._tally.refused(reason)
        self._reporter.drop(reason)
        if session_id is None:
            return
        s = self._sessions.get(session_id)
        if s is None and not gap:
            return  # nothing to remember about a session we do not keep
        if s is None:
            s = self._session_locked(session_id)
        s.submitted += 1
        s.dropped += 1
        if gap:
            s.note_dropped_after_queue({reason: 1})
        self._note_idle_locked(s)

    # -- workers -----------------------------------------------------------

    def _runnable(self, s: SessionState) -> bool:
        """``s`` has work a worker can start: an exchange, or a next item.

        Takes the next item when there is none in flight (one per session).
        """
        if s.pending is not None or s.current is not None:
            return True
        if s.batch:  # taken for a window, not sent: they go first, in order
            s.current = s.batch.pop(0)
            return True
        if not s.queue:
            return False
        item = s.queue.popleft()
        item.state = ItemState.TAKEN
        s.current = item
        if item.gap:
            for reason, count in item.gap.items():
                s.note_gap(reason, count)
            item.gap = None
        return True

    def _dispatch_locked(self) -> int:
        """Give ready sessions workers, within the limit (``Workforce.dispatch``)."""
        if not self._ready or self._stopping:
            return 0
        return self.crew.dispatch(len(self._ready), time.monotonic(), self._work)

    def spawn_failed(self) -> None:
        """A worker counted by ``_dispatch`` could not start (interpreter exit)."""
        with self._lock:
            self.crew.workers -= 1
            self.crew.starting -= 1

    def worker_started(self) -> None:
        """A worker ``_dispatch`` asked for is running (it asks for work next)."""
        with self._lock:
            self.crew.starting -= 1

    def worker_exited(self) -> bool:
        """One worker fewer; True when it was the last and the engine is stopping."""
        with self._lock:
            self.crew.workers -= 1
            return self.crew.workers == 0 and self._stopping

    def next(
        self, s: SessionState | None, step: Step | None, wakeups: int
    ) -> tuple[SessionState | None, int, int]:
        """Book ``step`` on ``s`` (if any), then the session this worker runs next.

        Waits while there is nothing to do. Returns (session or None when
        stopping, the budget wakeup count to pass back, workers to start).
        """
        with self._lock:
            if s is not None and step is not None:
                s = self._book_locked(s, step, wakeups)
            if s is None:
                s = self._pick_locked()
            return s, self._budget_wakeups, self._dispatch_locked()

    def _pick_locked(self) -> SessionState | None:
        crew = self.crew
        while True:
            if self._stopping:
                return None
            now = time.monotonic()
            self._release_due_locked(now)
            if self._ready and crew.room(now) > 0:
                s = self._next_ready_locked(now)
                if s is not None:
                    return s
            timer = self._timers.next_deadline()
            crew.wait(self._work, crew.idle_timeout(now, timer, ready=bool(self._ready)))

    def _book_locked(self, s: SessionState, step: Step, wakeups: int) -> SessionState | None:
        now = time.monotonic()
        delivered = step.kind is Outcome.DELIVERED or step.gap_written is not None
        self.crew.end(s, now, delivered=delivered, waiting=bool(self._ready))
        item = s.current
        s.held = step.held
        if step.retried:
            s.retried += 1
            self._tally.retried += 1
        if step.body_size and item is not None and item.state is not ItemState.DONE:
            self.caps.resize(item, step.body_size)
        if step.gap_written is not None:
            _, count, reasons = step.gap_written
            s.gap_count -= count
            for reason, n in reasons.items():
                left = s.gap_reasons.get(reason, 0) - n
                if left > 0:
                    s.gap_reasons[reason] = left
                else:
                    s.gap_reasons.pop(reason, None)
            self._tally.gaps += 1
        if item is not None:
            if step.kind is not None:
                self._finish_locked(item, step.kind, step.reason)
            elif self._stopping:
                self._finish_locked(item, Outcome.DROPPED, DROP_CLOSED)
        if step.finished:  # the rest of a pipelined window, in order
            for done, kind, why in step.finished:
                s.batch.remove(done)
                self._finish_locked(done, kind, why)
        if step.promote is not None:  # the window's first entry to recover goes on alone
            s.batch.remove(step.promote)
            s.current = step.promote
        if self._stopping:
            while s.batch:
                self._finish_locked(s.batch.pop(0), Outcome.DROPPED, DROP_CLOSED)
            if s.current is not None and step.promote is not None:
                self._finish_locked(s.current, Outcome.DROPPED, DROP_CLOSED)
            return None
        wait = step.wait
        if step.held and self._budget_wakeups != wakeups:
            wait = 0.0  # the budget re-opened while this step was held back: ask again now
        if wait is not None:
            s.phase = Phase.WAITING
            self._timers.push(time.monotonic() + wait, s)
            if self.crew.waiting:
                self._work.notify()  # an idle worker may need to wake earlier
        elif self._runnable(s):
            # A backoff that ran out while this worker was busy is due now: a
            # worker that never idles must still let it run (round robin).
            self._release_due_locked(time.monotonic())
            if not self._ready:
                self.crew.begin(s, now)
                return s  # nobody else is waiting: keep going, no hand-off
            s.phase = Phase.READY
            self._ready.append(s)
        else:
            s.phase = Phase.IDLE
            self._note_idle_locked(s)
        if self.crew.room(now) <= 0:
            return None  # over the limit (it shrank): this worker idles
        return self._next_ready_locked(now)

    def _release_due_locked(self, now: float) -> None:
        for due in self._timers.pop_due(now):
            if due.phase is Phase.WAITING:
                due.phase = Phase.READY
                self._ready.append(due)

    def _next_ready_locked(self, now: float) -> SessionState | None:
        while self._ready:
            s = self._ready.popleft()
            if not self._runnable(s):
                s.phase = Phase.IDLE  # its only items were evicted while it waited
                self._note_idle_locked(s)
                continue
            s.phase = Phase.RUNNING
            self.crew.begin(s, now)
            return s
        return None

    def take_batch(self, s: SessionState, limit: int) -> list[Item]:
        """Up to ``limit`` items to pipeline after ``s.current``, in order (a worker's call).

        Items already taken for an earlier window come first, then queued ones,
        up to the first that carries a gap (its gap entry goes first, alone).
        """
        with self._lock:
            queue = s.queue
            while len(s.batch) < limit and queue and queue[0].gap is None:
                item = queue.popleft()
                item.state = ItemState.TAKEN
                s.batch.append(item)
            return s.batch[:limit]

    def gap_snapshot(self, s: SessionState) -> tuple[int, dict[str, int]]:
        """The losses ``s`` owes a gap entry for, now (a worker's consistent read)."""
        with self._lock:
            return s.gap_count, dict(s.gap_reasons)

    def wake_held(self) -> None:
        """The retry budget re-opened: every session it held back may retry now.

        Sessions in their ordinary backoff keep their deadlines. A worker told
        to hold back that has not booked it yet sees ``_budget_wakeups`` move.
        """
        with self._lock:
            self._budget_wakeups += 1
            now = time.monotonic()
            self._timers.expire_held(now)
            self._work.notify_all()

    # -- finishing ---------------------------------------------------------

    def _finish_locked(
        self, item: Item, kind: Outcome, reason: str | None = None, *, gap: bool = True
    ) -> None:
        """Count ``item`` once as delivered, failed or dropped, and free its memory.

        ``gap``: note the loss for the session's next entry (right for the
        item a worker holds; evictions and ``close`` place or skip it).
        """
        if item.state is ItemState.DONE:
            return
        item.state = ItemState.DONE
        s = item.session
        if s.current is item:
            s.current = None
        self.caps.release(item)
        item.entry = None
        item.record = None
        if kind is Outcome.DELIVERED:
            self._tally.finished(kind, "")
            s.delivered += 1
        elif kind is Outcome.FAILED:
            key = reason or "failed"
            self._tally.finished(kind, key)
            s.failed += 1
            if gap:
                s.note_gap(key)
        else:
            key = reason or "dropped"
            self._tally.finished(kind, key)
            s.dropped += 1
            if gap and key not in NO_GAP_REASONS:
                s.note_gap(key)
            self._reporter.drop(key)
        waiters = item.waiters
        if waiters:
            item.waiters = None
            for w in waiters:
                w.note(kind)
                if w.remaining == 0:
                    self._done.notify_all()
        else:
            self._tally.unflushed.add(kind)
        if self.caps.space_waiters:
            self._space.notify()

    def wait_outstanding(self, limit: float) -> FlushResult:
        """``flush``: wait up to ``limit`` s for the items outstanding right now
        (``_flush.wait_for_items``); the result also counts what finished since
        the previous flush."""
        with self._lock:
            earlier = self._tally.take_unflushed()
            items: list[Item] = []
            for s in self._sessions.values():
                if s.current is not None and s.current.state is not ItemState.DONE:
                    items.append(s.current)
                items.extend(s.batch)
                items.extend(s.queue)
            return wait_for_items(items, self._done, limit, earlier)

    def stop(self) -> bool:
        """``close``: drop what is queued (reason ``closed``), stop the workers.

        Items a worker holds are finished by that worker's next booking. True
        when no worker is left to close the transport.
        """
        with self._lock:
            self._stopping = True
            for s in self._sessions.values():
                while s.queue:
                    item = s.queue.popleft()
                    item.state = ItemState.TAKEN
                    self._finish_locked(item, Outcome.DROPPED, DROP_CLOSED)
                if s.phase is not Phase.RUNNING:
                    while s.batch:
                        self._finish_locked(s.batch.pop(0), Outcome.DROPPED, DROP_CLOSED)
                if s.current is not None and s.phase is not Phase.RUNNING:
                    self._finish_locked(s.current, Outcome.DROPPED, DROP_CLOSED)
                    s.pending = None
                    s.current_entry = None
            self._work.notify_all()
            self._space.notify_all()
            return self.crew.workers == 0

    # -- numbers -----------------------------------------------------------

    def snapshot(self, **extra: Any) -> Health:
        """Totals and per-session numbers, consistent (one critical section)."""
        with self._lock:
            return self._tally.health(
                self._sessions.values(),
                queued_entries=self.caps.entries,
                queued_bytes=self.caps.bytes,
                workers=self.crew.workers,
                concurrency_limit=self.crew.limit.limit,
                waiting_for_room=self.caps.space_waiters,
                **extra,
            )
