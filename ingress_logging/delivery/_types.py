"""The engine's answers in numbers: ``FlushResult``, ``Health``, drop reasons.

Counting rule, per session and in total, at every instant::

    submitted == delivered + failed + dropped + pending

``dropped`` entries were never sent (queue full, evicted, refused by a
plugin, closed); ``failed`` entries were tried and the server did not store
them (retries exhausted, permanent 4xx, 401, no token). Nothing leaves the
engine without landing in exactly one of the three final buckets.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "DROP_BLOCK_TIMEOUT",
    "DROP_BUILD_ERROR",
    "DROP_CLOSED",
    "DROP_EVICTED",
    "DROP_PREPARE",
    "DROP_QUEUE_FULL",
    "DROP_REENTRANT",
    "DROP_TOO_LARGE",
    "FAIL_UNSERIALISABLE",
    "NO_GAP_REASONS",
    "Counts",
    "FlushResult",
    "Health",
    "Outcome",
    "OverflowPolicy",
]


class Outcome(enum.Enum):
    """The one final count of an entry."""

    DELIVERED = "delivered"
    FAILED = "failed"
    DROPPED = "dropped"


OverflowPolicy = Literal["drop_newest", "drop_oldest", "block"]
OVERFLOW_POLICIES: Final = ("drop_newest", "drop_oldest", "block")

# Drop reasons (the ``reason`` field of DELIVERY_DROPPED and of gap entries).
DROP_QUEUE_FULL: Final = "queue_full"  # drop_newest: the new entry was refused
DROP_EVICTED: Final = "evicted"  # drop_oldest: an older queued entry made room
DROP_BLOCK_TIMEOUT: Final = "block_timeout"  # block: no room within block_timeout
DROP_TOO_LARGE: Final = "too_large"  # one entry larger than max_queue_bytes
DROP_CLOSED: Final = "closed"  # submitted after close(), or abandoned by close()
DROP_PREPARE: Final = "prepare_entry"  # a plugin dropped it (deliberate: no gap entry)
DROP_BUILD_ERROR: Final = "build_error"  # the entry builder raised or returned a non-dict
DROP_REENTRANT: Final = "reentrant"  # logged re-entrantly beyond _reentry.MAX_DEFERRED
# Failure reason beyond the protocol's outcomes.
FAIL_UNSERIALISABLE: Final = "unserialisable"
#: Drops that leave no gap entry: a plugin's deliberate choice, or the end.
NO_GAP_REASONS: Final = frozenset({DROP_PREPARE, DROP_CLOSED})


@dataclass(frozen=True, slots=True)
class Counts:
    """The five health numbers for one session or for the whole engine."""

    submitted: int = 0
    delivered: int = 0
    retried: int = 0
    dropped: int = 0
    failed: int = 0

    @property
    def pending(self) -> int:
        """Accepted and not yet delivered, failed or dropped."""
        return self.submitted - self.delivered - self.dropped - self.failed


@dataclass(frozen=True, slots=True)
class Health:
    """A consistent snapshot of the engine (taken under its lock).

    ``submitted``/``delivered``/``retried``/``dropped``/``failed`` are totals;
    ``sessions`` has the same numbers per session id the engine still keeps
    (idle ones beyond ``max_idle_sessions`` are forgotten); the ``*_by_reason``
    maps split drops and failures by reason; ``queued_entries`` and
    ``queued_bytes`` are what the memory cap is checked against (queued plus
    in flight; bytes are the estimate, corrected to the serialised size once
    an entry is serialised); ``in_flight`` counts entries a worker has taken
    (being sent, or backing off between attempts). ``gaps_unmarked`` counts
    lost entries whose session was forgotten (``max_idle_sessions``) before its
    gap entry could be written: reported here and in one diagnostic, never
    kept per session. ``retry_budget`` is the budget's snapshot; ``spool`` the
    spool's numbers (``SpoolStats``), if there is one. ``pipeline_fallbacks``
    counts servers whose path was seen to reorder pipelined appends and that
    are sent one append at a time since (each also reported once as a
    ``pipeline_reordered`` diagnostic). ``concurrency_limit`` is how many
    sessions may have a step in flight now (it adapts to the latency, at most
    ``max_concurrency``; steps overdue on a slow server are not counted).
    ``waiting_for_room`` counts ``submit`` calls waiting for room now
    (``overflow="block"``).
    """

    submitted: int
    delivered: int
    retried: int
    dropped: int
    failed: int
    sessions: Mapping[str, Counts] = field(default_factory=dict)
    dropped_by_reason: Mapping[str, int] = field(default_factory=dict)
    failed_by_reason: Mapping[str, int] = field(default_factory=dict)
    queued_entries: int = 0
    queued_bytes: int = 0
    in_flight: int = 0
    gaps_written: int = 0
    gaps_unmarked: int = 0
    workers: int = 0
    concurrency_limit: int = 0
    waiting_for_room: int = 0
    retry_budget: object | None = None
    spool: object | None = None
    pipeline_fallbacks: int = 0

    @property
    def pending(self) -> int:
        return self.submitted - self.delivered - self.dropped - self.failed

    @property
    def total(self) -> Counts:
        return Counts(self.submitted, self.delivered, self.retried, self.dropped, self.failed)


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What became of the entries submitted since the previous ``flush()``.

    That is every entry still pending when ``flush()`` was called, plus
    those that finished (or were refused) since the last flush on this
    engine: an entry that fails a moment before the caller flushes must
    still make the flush report a failure. ``bool(result)`` is True only
    if every one of them was delivered.
    ``timed_out`` is True when the deadline passed with entries still
    ``pending`` (they keep going in the background).
    """

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    timed_out: bool = False

    def __bool__(self) -> bool:
        return self.failed == 0 and self.dropped == 0 and self.pending == 0
