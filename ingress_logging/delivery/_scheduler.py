"""Who runs next: per-session FIFOs, a ready deque, a timer heap, caps and counters.

All state lives behind one lock (``self.lock``) and three conditions on it:
``work`` (idle workers wait for a ready session or the next timer),
``space`` (``block`` overflow waits for room) and ``done`` (``flush`` waits for
its items). Workers are the scheduler: there is no scheduler thread, so an
entry costs one hand-off (caller -> worker), not two. A worker holds the lock
only to pick a session and to book the result of one step; the network I/O
happens outside it.

Order and independence: a session is owned by at most one worker at a time
(``RUNNING``), and a session in backoff sits on the timer heap (``WAITING``)
holding no worker, so its 8-second wait delays nobody else. A worker that
finishes a step keeps its session if nobody else is ready (no lock hand-off
per entry), else sends it to the back of the ready deque (round robin).

Idle sessions beyond ``max_idle_sessions`` are forgotten (``_retention``);
the totals live here, not on sessions, so they stay exact.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from typing import Final

from ._reporter import Reporter
from ._retention import DEFAULT_MAX_IDLE_SESSIONS, SessionRetention
from ._session import IDLE, READY, RUNNING, WAITING, Item, SessionState
from ._types import (
    DROP_BLOCK_TIMEOUT,
    DROP_CLOSED,
    DROP_EVICTED,
    DROP_PREPARE,
    DROP_QUEUE_FULL,
    DROP_TOO_LARGE,
    FlushResult,
    OverflowPolicy,
)

__all__ = [
    "DELIVERED",
    "DONE",
    "DROPPED",
    "FAILED",
    "QUEUED",
    "TAKEN",
    "FlushWaiter",
    "Scheduler",
]

DELIVERED: Final = "delivered"
FAILED: Final = "failed"
DROPPED: Final = "dropped"

#: Drops that leave no gap entry: a plugin's deliberate choice, or the end.
NO_GAP_REASONS: Final = frozenset({DROP_PREPARE, DROP_CLOSED})

# Item states
QUEUED: Final = 0
TAKEN: Final = 1
DONE: Final = 2


class FlushWaiter:
    """Tallies what became of the items outstanding when ``flush()`` began.

    The scheduler keeps one more, with nothing outstanding, for the items
    that finish while no flush waits for them: the next flush reports those
    too, or a failure that beat the caller's ``flush()`` would go unseen.
    """

    __slots__ = ("delivered", "dropped", "failed", "remaining")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def note(self, kind: str) -> None:
        self.remaining -= 1
        self.add(kind)

    def add(self, kind: str) -> None:
        if kind == DELIVERED:
            self.delivered += 1
        elif kind == FAILED:
            self.failed += 1
        else:
            self.dropped += 1


class Scheduler:
    """The engine's shared state. Every method named ``*_locked`` needs ``lock`` held."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        overflow: OverflowPolicy,
        block_timeout: float,
        reporter: Reporter,
        max_idle_sessions: int = DEFAULT_MAX_IDLE_SESSIONS,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.reporter = reporter
        self.retention = SessionRetention(max_idle_sessions)
        self.reinit()

    def reinit(self) -> None:
        """Fresh locks and empty state (construction, and a forked child)."""
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)
        self.space = threading.Condition(self.lock)
        self.done = threading.Condition(self.lock)
        self.sessions: dict[str, SessionState] = {}
        self.retention.reset()
        self.ready: deque[SessionState] = deque()
        self.timers: list[tuple[float, int, SessionState]] = []
        self._tiebreak = itertools.count()
        self.fifo: deque[Item] = deque()  # submission order, for drop_oldest only
        self.evicted_spool_keys: list[object] = []  # drained by the engine, outside the lock
        self.entries = 0  # queued + in flight
        self.bytes = 0
        self.idle = 0  # workers waiting on ``work``
        self.workers = 0  # worker threads started and not yet exited
        self.stopping = False
        self.space_waiters = 0
        self.submitted = 0
        self.delivered = 0
        self.retried = 0
        self.dropped = 0
        self.failed = 0
        self.gaps = 0
        self.dropped_by: dict[str, int] = {}
        self.failed_by: dict[str, int] = {}
        self.unflushed = FlushWaiter(0)  # finished with no flush waiting on them
        #: Times the retry budget re-opened: a worker whose budget answer "hold
        #: back" predates the latest wakeup must not book that hold (see
        #: ``wake_budget_waiters_locked``).
        self.budget_wakeups = 0

    # -- submit side -------------------------------------------------------

    def session_locked(self, session_id: str) -> SessionState:
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = SessionState(session_id)
            self.retention.restore(s)  # evicted earlier: its chain head
        return s

    def note_idle_locked(self, s: SessionState) -> None:
        """``s`` may have become idle: an eviction candidate (``_retention``)."""
        self.retention.note_idle(s, self.sessions)

    def admit_locked(self, size: int, *, may_block: bool) -> str | None:
        """Make room for ``size`` bytes; None when it fits, else the drop reason."""
        if size > self.max_bytes:
            return DROP_TOO_LARGE
        if self._fits(size):
            return None
        policy = self.overflow
        if policy == "drop_oldest":
            while not self._fits(size) and self._evict_oldest_locked():
                pass
            return None if self._fits(size) else DROP_QUEUE_FULL
        if policy == "block" and may_block:
            deadline = time.monotonic() + self.block_timeout
            self.space_waiters += 1
            try:
                while not self._fits(size) and not self.stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.space.wait(left)
            finally:
                self.space_waiters -= 1
            return None if self._fits(size) else DROP_BLOCK_TIMEOUT
        return DROP_QUEUE_FULL

    def _fits(self, size: int) -> bool:
        return self.entries < self.max_entries and self.bytes + size <= self.max_bytes

    def enqueue_locked(self, s: SessionState, item: Item) -> bool:
        """Queue an admitted item; True when a worker should be woken or started."""
        if s.drop_gap:
            item.gap, s.drop_gap = s.drop_gap, None
        s.queue.append(item)
        self.entries += 1
        self.bytes += item.size
        if self.overflow == "drop_oldest":
            self.fifo.append(item)
            if len(self.fifo) > 2 * self.entries + 64:
                self.fifo = deque(i for i in self.fifo if i.state == QUEUED)
        if s.state == IDLE:
            s.state = READY
            self.ready.append(s)
            self.retention.busy(s)
            return True
        return False

    def _evict_oldest_locked(self) -> bool:
        while self.fifo:
            item = self.fifo.popleft()
            if item.state != QUEUED:
                continue
            s = item.session
            # The oldest queued item overall is the oldest queued one of its session.
            assert s.queue[0] is item
            s.queue.popleft()
            item.state = TAKEN
            if item.spool_key is not None:
                # Its spool row must go too, or the next start would deliver it
                # after the newer entries of its session (the engine acks these).
                self.evicted_spool_keys.append(item.spool_key)
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
            self.finish_item_locked(item, DROPPED, DROP_EVICTED, gap=False)
            return True
        return False

    def count_drop_locked(self, s: SessionState | None, reason: str, *, gap: bool) -> None:
        """A submit that was refused (never queued)."""
        self.submitted += 1
        self.dropped += 1
        self.dropped_by[reason] = self.dropped_by.get(reason, 0) + 1
        if s is not None:
            s.submitted += 1
            s.dropped += 1
            if gap:
                s.note_dropped_after_queue({reason: 1})
        self.unflushed.add(DROPPED)
        self.reporter.drop(reason)

    # -- worker side ---------------------------------------------------------

    def pick_locked(self) -> SessionState | None:
        """The next session with work for this worker; waits; None when stopping."""
        while True:
            if self.stopping:
                return None
            now = time.monotonic()
            self._release_due_locked(now)
            s = self._next_ready_locked()
            if s is not None:
                return s
            timers = self.timers
            timeout = (timers[0][0] - now) if timers else None
            self.idle += 1
            try:
                self.work.wait(timeout)
            finally:
                self.idle -= 1

    def take_next_locked(self, s: SessionState) -> bool:
        if not s.queue:
            return False
        item = s.queue.popleft()
        item.state = TAKEN
        s.current = item
        if item.gap:
            for reason, count in item.gap.items():
                s.note_gap(reason, count)
            item.gap = None
        return True

    def release_locked(self, s: SessionState, wait: float | None) -> SessionState | None:
        """Book the end of a step on ``s``; return the session to run next, if any.

        ``wait`` is set when the session must back off (a ``Wait`` action or a
        held-back retry): it goes on the timer heap and frees this worker.
        """
        if self.stopping:
            return None
        if wait is not None:
            s.state = WAITING
            s.deadline = time.monotonic() + wait
            heapq.heappush(self.timers, (s.deadline, next(self._tiebreak), s))
            if self.idle:
                self.work.notify()  # an idle worker may need to wake earlier
        elif s.pending is not None or s.current is not None or self.take_next_locked(s):
            # A backoff that ran out while this worker was busy is due now: a
            # worker that never idles must still let it run (round robin).
            if self.timers and self.timers[0][0] <= time.monotonic():
                self._release_due_locked(time.monotonic())
            if not self.ready:
                return s  # nobody else is waiting: keep going, no hand-off
            s.state = READY
            self.ready.append(s)
        else:
            s.state = IDLE
            self.note_idle_locked(s)
        return self._next_ready_locked()

    def _release_due_locked(self, now: float) -> None:
        """Move every session whose backoff has run out to the ready deque."""
        timers = self.timers
        while timers and timers[0][0] <= now:
            due = heapq.heappop(timers)[2]
            if due.state == WAITING:
                due.waited = True
                due.state = READY
                self.ready.append(due)

    def _next_ready_locked(self) -> SessionState | None:
        while self.ready:
            s = self.ready.popleft()
            if s.pending is None and s.current is None and not self.take_next_locked(s):
                s.state = IDLE  # its only items were evicted while it waited
                self.note_idle_locked(s)
                continue
            s.state = RUNNING
            return s
        return None

    def wake_budget_waiters_locked(self) -> None:
        """The retry budget re-opened: every session it held back may retry now.

        Sessions in their ordinary backoff keep their deadlines. A session
        whose worker was told to hold back but has not booked it yet is not on
        the heap: ``budget_wakeups`` tells that worker to ask again at once.
        """
        self.budget_wakeups += 1
        now = time.monotonic()
        self.timers = [(min(d, now) if s.held else d, n, s) for d, n, s in self.timers]
        heapq.heapify(self.timers)
        self.work.notify_all()

    def wait_outstanding(self, limit: float) -> FlushResult:
        """``flush``: wait up to ``limit`` s for the items outstanding right now.

        The result also counts what finished since the previous flush.

        Each outstanding item gets this waiter; completions tally it (O(1)
        each) and wake the flusher when its count reaches zero.
        """
        with self.lock:
            earlier, self.unflushed = self.unflushed, FlushWaiter(0)
            items: list[Item] = []
            for s in self.sessions.values():
                if s.current is not None and s.current.state != DONE:
                    items.append(s.current)
                items.extend(s.queue)
            waiter = FlushWaiter(len(items))
            for item in items:
                if item.waiters is None:
                    item.waiters = [waiter]
                else:
                    item.waiters.append(waiter)
            deadline = time.monotonic() + limit
            while waiter.remaining > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.done.wait(left)
            if waiter.remaining:
                for item in items:
                    if item.waiters is not None and waiter in item.waiters:
                        item.waiters.remove(waiter)
        return FlushResult(
            delivered=earlier.delivered + waiter.delivered,
            failed=earlier.failed + waiter.failed,
            dropped=earlier.dropped + waiter.dropped,
            pending=waiter.remaining,
            timed_out=waiter.remaining > 0,
        )

    def finish_item_locked(
        self, item: Item, kind: str, reason: str | None = None, *, gap: bool = True
    ) -> None:
        """``item`` is delivered, failed or dropped: count it once, free its memory.

        ``gap``: note the loss for the session's next entry (right for the
        item a worker holds; evictions and ``close`` place or skip it).
        """
        if item.state == DONE:
            return
        item.state = DONE
        s = item.session
        if s.current is item:
            s.current = None
        self.entries -= 1
        self.bytes -= item.size
        item.entry = None
        item.record = None
        if kind == DELIVERED:
            self.delivered += 1
            s.delivered += 1
        elif kind == FAILED:
            self.failed += 1
            s.failed += 1
            key = reason or "failed"
            self.failed_by[key] = self.failed_by.get(key, 0) + 1
            if gap:
                s.note_gap(key)
        else:
            key = reason or "dropped"
            self.dropped += 1
            s.dropped += 1
            self.dropped_by[key] = self.dropped_by.get(key, 0) + 1
            if gap and key not in NO_GAP_REASONS:
                s.note_gap(key)
            self.reporter.drop(key)
        waiters = item.waiters
        if waiters:
            item.waiters = None
            for w in waiters:
                w.note(kind)
                if w.remaining == 0:
                    self.done.notify_all()
        else:
            self.unflushed.add(kind)
        if self.space_waiters:
            self.space.notify()
