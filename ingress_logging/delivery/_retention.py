"""Which idle sessions the engine forgets, and the chain heads it keeps for them.

An app with one session per request or job would otherwise grow the engine by
one ``SessionState`` per session, forever. Idle sessions beyond
``max_idle`` are forgotten, least recently idle first; only a session with
nothing to do goes (``evictable``). One that still owes a gap entry goes
too (a server that is down while every record names a new session would
otherwise keep one state per record): its count is aggregated. Its chain head moves to ``heads``,
a second, cheaper LRU (``max_heads``: a key and a uuid, ~200 bytes each),
and comes back with the session (``restore``), so its next entry still names
the previous one as ``parentUuid`` and ``Last-Uuid``. A head that falls out
of ``heads`` is passed to ``forget_head`` (the client's ``Last-Uuid`` map
forgets it too, or that map would grow instead); that session's next entry
then finds the head through the protocol's 409 recovery, with ``parentUuid``
null. Totals live on the scheduler, not on sessions: eviction keeps them exact.

Plain records guarded by the scheduler's lock; every operation is O(1)
amortised (``OrderedDict`` moves and pops), no scan of all sessions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from ._session import Phase, SessionState

__all__ = [
    "DEFAULT_MAX_HEADS",
    "DEFAULT_MAX_IDLE_SESSIONS",
    "SessionRetention",
    "evictable",
    "owed_gap",
]

DEFAULT_MAX_IDLE_SESSIONS: Final = 10_000
#: Chain heads kept for evicted sessions.
DEFAULT_MAX_HEADS: Final = 100_000


def evictable(s: SessionState) -> bool:
    """Nothing queued, in flight or waiting: only counters, the chain head and
    an owed gap entry would be lost (the head is kept in ``heads``; the owed
    gap's count is handed back to the scheduler, which reports it in total).

    ``queue``, ``current``, ``current_entry``, ``pending``, ``gap_sending`` and
    ``gap_snapshot`` (work in progress) and a ``phase`` other than IDLE (on the
    ready deque or the timer heap, or held by a worker) block eviction. Flush
    waiters hang on items, so no queue and no current item mean none.
    """
    return (
        s.phase is Phase.IDLE
        and not s.queue
        and s.current is None
        and s.pending is None
        and s.current_entry is None
        and not s.gap_sending
        and s.gap_snapshot is None
    )


def owed_gap(s: SessionState) -> int:
    """Lost entries of ``s`` whose gap entry is not written yet."""
    return s.gap_count + (sum(s.drop_gap.values()) if s.drop_gap else 0)


class SessionRetention:
    """The idle-session LRU and the evicted-head LRU of one scheduler."""

    __slots__ = ("evicted", "forget_head", "heads", "idle", "max_heads", "max_idle")

    def __init__(self, max_idle: int, max_heads: int = DEFAULT_MAX_HEADS) -> None:
        self.max_idle = max_idle
        self.max_heads = max_heads
        #: Told each session id whose head falls out of ``heads``; called under
        #: the scheduler's lock, so it must be O(1) and do no I/O.
        self.forget_head: Callable[[str], None] | None = None
        self.reset()

    def reset(self) -> None:
        """Construction, and a forked child (whose scheduler starts empty)."""
        #: Idle sessions, least recently idle first: eviction candidates. A hint
        #: only - ``evictable`` is asked again when one comes up for eviction.
        self.idle: OrderedDict[str, None] = OrderedDict()
        #: Chain heads of evicted sessions, least recently evicted first.
        self.heads: OrderedDict[str, str | None] = OrderedDict()
        self.evicted = 0

    def restore(self, s: SessionState) -> None:
        """A new state for ``s.session_id``: give it back its head, if kept."""
        if self.heads:
            s.parent = self.heads.pop(s.session_id, None)

    def busy(self, s: SessionState) -> None:
        """``s`` got work: no longer a candidate."""
        if self.idle:
            self.idle.pop(s.session_id, None)

    def note_idle(self, s: SessionState, sessions: dict[str, SessionState]) -> int:
        """``s`` may have become idle: make it the most recent candidate, and
        forget the least recent beyond ``max_idle`` from ``sessions``.

        Returns the lost entries the forgotten sessions still owed a gap
        entry for (the scheduler counts them in ``gaps_unmarked``).
        """
        sid = s.session_id
        if not evictable(s) or sessions.get(sid) is not s:
            return 0
        idle = self.idle
        if sid in idle:
            idle.move_to_end(sid)
        else:
            idle[sid] = None
        unmarked = 0
        while len(idle) > self.max_idle:
            old_id, _ = idle.popitem(last=False)
            old = sessions.get(old_id)
            if old is not None and evictable(old):
                del sessions[old_id]
                unmarked += owed_gap(old)
                self._keep_head(old_id, old.parent)
        return unmarked

    def _keep_head(self, sid: str, head: str | None) -> None:
        self.evicted += 1
        if head is None:
            # Nothing to give back; the client forgets whatever it knew at once.
            if self.forget_head is not None:
                self.forget_head(sid)
            return
        heads = self.heads
        heads[sid] = head
        heads.move_to_end(sid)
        while len(heads) > self.max_heads:
            gone, _ = heads.popitem(last=False)
            if self.forget_head is not None:
                self.forget_head(gone)
