"""``EngineProbe``: the one test hook into an engine's insides.

``stats()`` answers what an application needs. A few tests must prove more:
that memory stays bounded (how many chain heads are kept, how many the
client remembers), what a forked child starts with, what a session in
backoff still holds. They read it here - under the scheduler's lock, as
copies - instead of reaching into private fields. Not public API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._transport import ClientTransport

if TYPE_CHECKING:
    from ._engine import DeliveryEngine

__all__ = ["EngineProbe", "SessionView"]


@dataclass(frozen=True, slots=True)
class SessionView:
    """One kept session: its phase, whether an entry is taken, how many are queued."""

    phase: str
    has_current: bool
    queued: int


class EngineProbe:
    """Copies of an engine's retention and session state (see the module docstring)."""

    def __init__(self, engine: DeliveryEngine) -> None:
        self._engine = engine

    def kept_sessions(self) -> list[str]:
        """Ids of the sessions whose state is kept, oldest first."""
        sched = self._engine._sched
        with sched._lock:
            return list(sched._sessions)

    def session(self, session_id: str) -> SessionView | None:
        sched = self._engine._sched
        with sched._lock:
            s = sched._sessions.get(session_id)
            if s is None:
                return None
            return SessionView(s.phase.name, s.current is not None, len(s.queue))

    def kept_heads(self) -> list[str]:
        """Sessions forgotten whose chain head is still kept, least recent first."""
        sched = self._engine._sched
        with sched._lock:
            return list(sched.retention.heads)

    def idle_sessions(self) -> list[str]:
        """Kept sessions with nothing to do, least recently idle first."""
        sched = self._engine._sched
        with sched._lock:
            return list(sched.retention.idle)

    def evicted(self) -> int:
        """Session states forgotten so far."""
        return self._engine._sched.retention.evicted

    def keep_heads(self, count: int) -> None:
        """Keep at most ``count`` heads of forgotten sessions (default 100,000)."""
        sched = self._engine._sched
        with sched._lock:
            sched.retention.max_heads = count

    def client_heads(self) -> int | None:
        """Chain heads the engine's client remembers (None: no client yet)."""
        transport = self._engine._pool._transport
        if not isinstance(transport, ClientTransport):
            return None
        return len(transport.client._heads)
