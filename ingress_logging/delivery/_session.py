"""Per-session state and queued items: plain records owned by the ``Scheduler``.

A session is in exactly one ``Phase`` at a time:

* ``IDLE``    - nothing queued, nothing in flight;
* ``READY``   - in the scheduler's ready deque, waiting for a worker;
* ``RUNNING`` - owned by one worker, which runs its steps;
* ``WAITING`` - backing off on the scheduler's timer heap.

The scheduler moves the phases and keeps the queue and the counters, under
its lock. The fields marked *worker's* (the exchange in progress) belong to
the worker that holds the session ``RUNNING``; nothing else touches them then.
"""

from __future__ import annotations

import contextvars
import datetime
import enum
import uuid as uuid_mod
from collections import deque
from collections.abc import Callable
from typing import Any

from ..entries import ENTRY_OVERHEAD
from ._seams import Pending

__all__ = [
    "ENTRY_OVERHEAD",
    "Item",
    "ItemState",
    "Phase",
    "Prepared",
    "SessionState",
    "estimate_size",
    "fill_entry",
    "gap_entry",
]


class Phase(enum.Enum):
    """Where a session is in the scheduler (module docstring)."""

    IDLE = "idle"
    READY = "ready"
    RUNNING = "running"
    WAITING = "waiting"


class Prepared(enum.Enum):
    """Whether an item's entry was built, filled and prepared at submit (spool mode)."""

    NO = "no"  # built and prepared on a worker
    YES = "yes"  # ready to send as it is
    FILLED = "filled"  # ready, and its ``parentUuid`` is the engine's filling


class ItemState(enum.Enum):
    """An item from ``submit`` to its one final count."""

    QUEUED = "queued"  # in its session's queue
    TAKEN = "taken"  # a worker took it (or an eviction is finishing it)
    DONE = "done"  # counted delivered, failed or dropped


EntrySource = dict[str, Any] | Callable[[], dict[str, Any]]


def estimate_size(entry: object, record: object) -> int:
    """Bytes to charge against ``max_queue_bytes`` at submit, cheaply.

    The real size is only known after serialisation, which happens on the
    worker. Until then: ``ENTRY_OVERHEAD`` plus the length of the text the
    entry carries - the top-level string values of a dict, or the message
    (and the exception text, if already formatted) of a ``LogRecord``-like
    record. Nested containers are charged a flat 64 bytes each: the estimate
    must cost microseconds, not walk arbitrary structures.
    """
    size = ENTRY_OVERHEAD
    if isinstance(entry, dict):
        for value in entry.values():
            if isinstance(value, str | bytes):
                size += len(value)
            elif isinstance(value, dict | list | tuple):
                size += 64 + (_shallow(value) if len(value) <= 32 else 64 * len(value))
            else:
                size += 16
        return size
    msg = getattr(record, "msg", None)
    if isinstance(msg, str):
        size += len(msg)
    args = getattr(record, "args", None)
    if isinstance(args, tuple):
        size += 32 * len(args)
    exc_text = getattr(record, "exc_text", None)
    if isinstance(exc_text, str):
        size += len(exc_text)
    if getattr(record, "exc_info", None):
        size += 2048  # a traceback, formatted later on the worker
    return size


def _shallow(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> int:
    items = value.values() if isinstance(value, dict) else value
    return sum(len(v) if isinstance(v, str) else 16 for v in items)


class Item:
    """One submitted entry, from ``submit`` until delivered, failed or dropped."""

    __slots__ = (
        "context",
        "entry",
        "gap",
        "prepared",
        "record",
        "session",
        "size",
        "spool_key",
        "state",
        "waiters",
    )

    def __init__(
        self, session: SessionState, entry: EntrySource, record: object, size: int
    ) -> None:
        self.session = session
        self.entry: EntrySource | None = entry
        self.record = record
        self.size = size
        self.state = ItemState.QUEUED
        self.prepared = Prepared.NO
        self.waiters: list[Any] | None = None  # flush waiters interested in this item
        self.spool_key: object = None
        #: The submitter's context variables, for building and preparing the
        #: entry on a worker as if on the caller's thread (None: prepared already).
        self.context: contextvars.Context | None = None
        #: Losses just before this entry in submission order: its gap entry's reasons.
        self.gap: dict[str, int] | None = None


class SessionState:
    """Everything the engine keeps about one session."""

    __slots__ = (
        "batch",
        "current",
        "current_entry",
        "delivered",
        "drop_gap",
        "dropped",
        "failed",
        "filled_parent",
        "gap_count",
        "gap_reasons",
        "gap_sending",
        "gap_skip",
        "gap_snapshot",
        "held",
        "parent",
        "pending",
        "phase",
        "queue",
        "retried",
        "session_id",
        "submitted",
    )

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.queue: deque[Item] = deque()
        self.phase = Phase.IDLE
        self.current: Item | None = None  # taken from the queue, not finished
        #: Taken after ``current`` for a pipelined window, in order, not finished;
        #: ``current`` is refilled from here before the queue.
        self.batch: list[Item] = []
        # The worker's: the exchange in progress.
        self.current_entry: dict[str, Any] | None = None  # built, waiting behind a gap
        self.pending: Pending | None = None  # the exchange in progress
        self.gap_sending = False  # ``pending`` is the gap entry, not ``current``
        self.gap_skip = False  # the gap failed: send ``current`` without one this time
        self.gap_snapshot: tuple[str, int, dict[str, int]] | None = None  # uuid, count, reasons
        self.filled_parent = False  # the engine set ``current_entry["parentUuid"]``
        # The scheduler's.
        self.held = False  # WAITING because the retry budget held the retry back
        self.parent: str | None = None  # uuid of the last entry delivered from here
        # Losses to report before the next entry a worker begins (worker side) ...
        self.gap_count = 0
        self.gap_reasons: dict[str, int] = {}
        # ... and losses after the last queued entry, for the next one submitted.
        self.drop_gap: dict[str, int] | None = None
        self.submitted = 0
        self.delivered = 0
        self.retried = 0
        self.dropped = 0
        self.failed = 0

    def note_gap(self, reason: str, count: int = 1) -> None:
        self.gap_count += count
        self.gap_reasons[reason] = self.gap_reasons.get(reason, 0) + count

    def note_dropped_after_queue(self, reasons: dict[str, int]) -> None:
        """Losses positioned after every queued entry: carried by the next submitted."""
        target = self.drop_gap
        if target is None:
            target = self.drop_gap = {}
        for reason, count in reasons.items():
            target[reason] = target.get(reason, 0) + count


def new_uuid() -> str:
    return str(uuid_mod.uuid4())


def utc_now_iso() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def gap_entry(
    session_id: str, parent: str | None, count: int, reasons: dict[str, int]
) -> dict[str, Any]:
    """The marker written before the next delivered entry after losses.

    ``reason`` is the single reason, or ``"multiple"`` with the split in
    ``reasons``; the entry carries no content from the lost entries.
    """
    reason = next(iter(reasons)) if len(reasons) == 1 else "multiple"
    return {
        "type": "system",
        "subtype": "gap",
        "count": count,
        "reason": reason,
        "reasons": reasons,
        "content": f"{count} log entries of this session were not delivered ({reason})",
        "level": "warning",
        "uuid": new_uuid(),
        "parentUuid": parent,
        "sessionId": session_id,
        "timestamp": utc_now_iso(),
    }


def fill_entry(entry: dict[str, Any], session_id: str, parent: str | None) -> bool:
    """Fill ``uuid``, ``parentUuid`` and ``sessionId`` where absent.

    A key that is present - even as None - is the caller's choice and kept
    (summaries and tags carry no uuid on purpose). Returns True when
    ``parentUuid`` was filled here, so a gap entry may be threaded in.
    """
    if "uuid" not in entry:
        entry["uuid"] = new_uuid()
    filled = False
    if "parentUuid" not in entry and entry.get("uuid"):
        entry["parentUuid"] = parent
        filled = True
    if "sessionId" not in entry:
        entry["sessionId"] = session_id
    return filled
