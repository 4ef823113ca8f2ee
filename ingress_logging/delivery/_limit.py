"""How many sessions may have a step in flight: a limit that follows the latency.

In the manner of TCP Vegas and Netflix's concurrency-limits: every finished
step that delivered is a latency sample. The smallest recent sample is the
latency without queueing (``noload``); at a limit ``L`` the requests queued
somewhere (in the server, or in this process waiting for the GIL) are about
``L * (1 - noload / latency)``. Fewer than ``alpha``: the path has room, and if
sessions were waiting for a worker the limit grows by one; more than
``beta``: the limit shrinks by one. Across a 50 ms round trip the latency does
not grow with the number of requests in flight, so the limit climbs to the
cap; on loopback, where the server and this process share the CPU, every
extra request in flight only lengthens the others, so it stays small.

A step in flight longer than ``overdue_after`` (a few times the usual
latency) no longer counts against the limit: a slow session waits on its
server, not on this process, and must not hold back an unrelated one.

Not thread-safe: the scheduler owns it and calls it under its lock.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["ConcurrencyLimit"]

#: The limit of a new engine: its first burst gets this many workers at once.
INITIAL_LIMIT: Final = 8
#: A step in flight this many times the smoothed latency is overdue ...
OVERDUE_FACTOR: Final = 4.0
#: ... but never sooner than this (loopback steps take ~1 ms: scheduling noise) ...
OVERDUE_MIN: Final = 0.05
#: ... nor later than this (a uniformly slow server: every step waits on it).
OVERDUE_MAX: Final = 1.0
#: Before any sample.
OVERDUE_INITIAL: Final = 0.25
#: The no-load latency is the smallest sample of the last one or two windows.
NOLOAD_WINDOW: Final = 5.0
#: Requests queued on the path (times log10 of the limit, at least 1) below which
#: the limit may grow, and above which it shrinks.
ALPHA: Final = 3.0
BETA: Final = 6.0
#: Weight of a new sample in the smoothed latency.
SMOOTHING: Final = 0.1


class ConcurrencyLimit:
    """The adaptive limit on steps in flight, between 1 and ``cap``."""

    __slots__ = ("_min_now", "_min_prev", "_smoothed", "_window_end", "cap", "limit")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.limit = min(INITIAL_LIMIT, cap)
        self._smoothed: float | None = None
        self._min_now = math.inf
        self._min_prev = math.inf
        self._window_end = -math.inf

    @property
    def overdue_after(self) -> float:
        """Seconds after which a step in flight stops counting against the limit."""
        if self._smoothed is None:
            return OVERDUE_INITIAL
        return min(max(OVERDUE_FACTOR * self._smoothed, OVERDUE_MIN), OVERDUE_MAX)

    def sample(self, latency: float, now: float, *, waiting: bool) -> None:
        """A step that delivered took ``latency`` seconds; ``waiting``: sessions were
        ready with no worker free (the limit was what held them)."""
        overdue = latency > self.overdue_after
        old = self._smoothed
        self._smoothed = latency if old is None else old + SMOOTHING * (latency - old)
        if overdue:
            return  # a slow server, not a queue: it says nothing about the limit
        if now >= self._window_end:
            self._min_prev, self._min_now = self._min_now, math.inf
            self._window_end = now + NOLOAD_WINDOW
        self._min_now = min(self._min_now, latency)
        noload = min(self._min_now, self._min_prev)
        if latency <= 0.0:
            return
        queued = self.limit * (1.0 - noload / latency)
        scale = math.log10(max(self.limit, 10))
        if queued < ALPHA * scale:
            if waiting and self.limit < self.cap:
                self.limit += 1
        elif queued > BETA * scale and self.limit > 1:
            self.limit -= 1
