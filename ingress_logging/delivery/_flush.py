"""What ``flush()`` waits for: a tally of the items outstanding when it began."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._types import FlushResult, Outcome

if TYPE_CHECKING:
    from ._session import Item

__all__ = ["FlushWaiter", "wait_for_items"]


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

    def note(self, kind: Outcome) -> None:
        self.remaining -= 1
        self.add(kind)

    def add(self, kind: Outcome) -> None:
        if kind is Outcome.DELIVERED:
            self.delivered += 1
        elif kind is Outcome.FAILED:
            self.failed += 1
        else:
            self.dropped += 1

    def result(self, earlier: FlushWaiter) -> FlushResult:
        """This flush's answer, with what finished before it (``earlier``)."""
        return FlushResult(
            delivered=earlier.delivered + self.delivered,
            failed=earlier.failed + self.failed,
            dropped=earlier.dropped + self.dropped,
            pending=self.remaining,
            timed_out=self.remaining > 0,
        )


def wait_for_items(
    items: Iterable[Item], done: threading.Condition, limit: float, earlier: FlushWaiter
) -> FlushResult:
    """Wait up to ``limit`` s on ``done`` (its lock held) until ``items`` finished.

    Each item gets this flush's waiter; their completions tally it (O(1) each)
    and notify ``done`` when its count reaches zero. The result also counts
    ``earlier``: what finished since the previous flush.
    """
    items = list(items)
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
        done.wait(left)
    if waiter.remaining:
        for item in items:
            if item.waiters is not None and waiter in item.waiters:
                item.waiters.remove(waiter)
    return waiter.result(earlier)
