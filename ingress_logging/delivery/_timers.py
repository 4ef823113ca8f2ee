"""The timer heap: sessions waiting out a backoff (or the retry budget), by deadline.

A session in ``Phase.WAITING`` holds no worker; it sits here until its
deadline, then the scheduler moves it to the ready deque. Owned by the
scheduler and used under its lock.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._session import SessionState

__all__ = ["TimerHeap"]


class TimerHeap:
    """Deadlines (monotonic) of waiting sessions, earliest first."""

    __slots__ = ("_heap", "_tiebreak")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, SessionState]] = []
        self._tiebreak = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._heap)

    def push(self, deadline: float, s: SessionState) -> None:
        heapq.heappush(self._heap, (deadline, next(self._tiebreak), s))

    def next_deadline(self) -> float | None:
        """The earliest deadline, or None with nobody waiting."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Iterator[SessionState]:
        """Take off, in deadline order, every session whose deadline has passed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)[2]

    def expire_held(self, now: float) -> None:
        """Sessions the retry budget held back are due now; backoffs keep theirs."""
        self._heap = [(min(d, now) if s.held else d, n, s) for d, n, s in self._heap]
        heapq.heapify(self._heap)
