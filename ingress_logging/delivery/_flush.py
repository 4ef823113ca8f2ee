"""What ``flush()`` waits for: a tally of the items outstanding when it began."""

from __future__ import annotations

from ._types import FlushResult, Outcome

__all__ = ["FlushWaiter"]


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
