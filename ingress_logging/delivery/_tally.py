"""The engine's totals: submitted, delivered, retried, dropped, failed, by reason.

Owned by the scheduler and changed only under its lock (not thread-safe on
its own). ``unflushed`` counts what finished with no flush waiting on it, so
the next ``flush`` can report it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._flush import FlushWaiter
from ._types import Counts, Health, Outcome

if TYPE_CHECKING:
    from ._session import SessionState

__all__ = ["Tally"]


class Tally:
    """Every number of ``Health`` that is not per session or per queue."""

    __slots__ = (
        "delivered",
        "dropped",
        "dropped_by",
        "failed",
        "failed_by",
        "gaps",
        "gaps_unmarked",
        "retried",
        "submitted",
        "unflushed",
    )

    def __init__(self) -> None:
        self.submitted = 0
        self.delivered = 0
        self.retried = 0
        self.dropped = 0
        self.failed = 0
        self.gaps = 0
        self.gaps_unmarked = 0
        self.dropped_by: dict[str, int] = {}
        self.failed_by: dict[str, int] = {}
        self.unflushed = FlushWaiter(0)

    def refused(self, reason: str) -> None:
        """An entry counted as submitted and dropped at once (never queued)."""
        self.submitted += 1
        self.dropped += 1
        self.dropped_by[reason] = self.dropped_by.get(reason, 0) + 1
        self.unflushed.add(Outcome.DROPPED)

    def finished(self, kind: Outcome, reason: str) -> None:
        """A queued entry finished (``reason`` for a failure or a drop)."""
        if kind is Outcome.DELIVERED:
            self.delivered += 1
        elif kind is Outcome.FAILED:
            self.failed += 1
            self.failed_by[reason] = self.failed_by.get(reason, 0) + 1
        else:
            self.dropped += 1
            self.dropped_by[reason] = self.dropped_by.get(reason, 0) + 1

    def take_unflushed(self) -> FlushWaiter:
        """What finished since the last flush; counting starts again from zero."""
        earlier, self.unflushed = self.unflushed, FlushWaiter(0)
        return earlier

    def health(self, sessions: Iterable[SessionState], **extra: Any) -> Health:
        """These totals, with the numbers of each kept session and ``extra`` fields."""
        counts = {}
        in_flight = 0
        for s in sessions:
            counts[s.session_id] = Counts(s.submitted, s.delivered, s.retried, s.dropped, s.failed)
            in_flight += (s.current is not None) + len(s.batch)
        return Health(
            submitted=self.submitted,
            delivered=self.delivered,
            retried=self.retried,
            dropped=self.dropped,
            failed=self.failed,
            sessions=counts,
            dropped_by_reason=dict(self.dropped_by),
            failed_by_reason=dict(self.failed_by),
            in_flight=in_flight,
            gaps_written=self.gaps,
            gaps_unmarked=self.gaps_unmarked,
            **extra,
        )
