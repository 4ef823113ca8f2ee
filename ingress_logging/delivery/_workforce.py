"""How many workers run, wait, are woken or starting, and which steps are in flight.

The scheduler asks it two questions under its lock: how many more sessions
may start a step now (``room``: the adaptive limit of ``_limit`` minus the
steps in flight that are not overdue), and, when sessions became ready, how
many idle workers to wake and how many threads to start (``dispatch``). When
the limit holds ready sessions back, one worker is kept idle: it waits only
until the oldest step in flight becomes overdue (``idle_timeout``), then takes
a session, so a session waiting on a slow server holds back nobody.

Owned by the scheduler, used under its lock (the waits are on its condition).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ._limit import ConcurrencyLimit

if TYPE_CHECKING:
    from ._session import SessionState

__all__ = ["Workforce"]


class Workforce:
    """Worker counts, the steps in flight, and the limit on them."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.reset()

    def reset(self) -> None:
        """No workers, nothing in flight (construction, and a forked child)."""
        self.workers = 0  # started and not yet exited
        self.starting = 0  # of those, spawned and not yet asking for work
        self.waiting = 0  # waiting for work on the scheduler's condition
        self.woken = 0  # of those, notified and not yet back
        self.limit = ConcurrencyLimit(self.max_workers)
        #: Sessions a worker is running a step of -> when that step began, oldest first.
        self.running: dict[SessionState, float] = {}

    # -- steps in flight ----------------------------------------------------------

    def begin(self, s: SessionState, now: float) -> None:
        """A worker starts a step of ``s``."""
        self.running[s] = now

    def end(self, s: SessionState, now: float, *, delivered: bool, waiting: bool) -> None:
        """The step of ``s`` ended; one that delivered is a latency sample.
        ``waiting``: sessions were ready with no worker for them."""
        started = self.running.pop(s, None)
        if started is not None and delivered:
            self.limit.sample(now - started, now, waiting=waiting)

    def room(self, now: float) -> int:
        """How many more sessions may start a step: the limit minus the steps in
        flight that are not overdue (a step waiting on a slow server holds nobody)."""
        running = self.running
        cutoff = now - self.limit.overdue_after
        overdue = 0
        for started in running.values():  # oldest first: stops at the first recent one
            if started > cutoff:
                break
            overdue += 1
        return self.limit.limit - (len(running) - overdue)

    def idle_timeout(self, now: float, timer: float | None, *, ready: bool) -> float | None:
        """How long an idle worker waits: until the next timer (``timer``, a
        deadline) or, with sessions held back, until the next step in flight
        becomes overdue (one already overdue frees no more room)."""
        timeout = None if timer is None else timer - now
        if ready:
            after = self.limit.overdue_after
            for started in self.running.values():  # oldest first
                overdue = started + after - now
                if overdue > 0:  # the next step to become overdue (earlier ones are)
                    timeout = overdue if timeout is None else min(timeout, overdue)
                    break
        return None if timeout is None else max(timeout, 0.0)

    # -- workers ------------------------------------------------------------------

    def dispatch(self, ready: int, now: float, work: threading.Condition) -> int:
        """Wake idle workers for ``ready`` sessions within the limit; return how
        many threads to start (counted already)."""
        # Workers woken or started for a session count as already running one.
        want = min(ready, max(0, self.room(now) - self.woken - self.starting))
        free = self.waiting - self.woken
        wake = min(want, free)
        if wake > 0:
            self.woken += wake
            work.notify(wake)
        spawn = want - wake
        if ready > want and free - wake <= 0 and self.starting <= 0 and self.running:
            spawn = max(spawn, 0) + 1  # the one that waits for a step to be overdue
        spawn = min(spawn, self.max_workers - self.workers)
        if spawn <= 0:
            return 0
        self.workers += spawn
        self.starting += spawn
        return spawn

    def wait(self, work: threading.Condition, timeout: float | None) -> None:
        """An idle worker waits on ``work`` (the scheduler's lock held)."""
        self.waiting += 1
        try:
            work.wait(timeout)
        finally:
            self.waiting -= 1
            # Counted down on any return, not only a notified one: a waiter
            # that timed out as ``notify`` ran was counted as woken but not
            # woken. Counting too few only costs a spare wakeup; counting too
            # many would leave ready sessions with every worker asleep.
            if self.woken:
                self.woken -= 1
