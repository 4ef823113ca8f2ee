"""What the viewer needs from the server: a few reads and a token check.

The viewer never writes. It types against these Protocols only, so any store
the server runs on (SQLite, PostgreSQL) serves it through a thin adapter.
Entries travel as their stored JSON text: the viewer parses only what it
shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ReadAuth", "SessionPage", "SessionSummary", "ViewerStore"]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One session in a listing. Activity times are ISO 8601 UTC strings."""

    id: str
    entries: int
    first_activity: str | None
    last_activity: str | None


@dataclass(frozen=True, slots=True)
class SessionPage:
    """A page of sessions, newest activity first; ``next_cursor`` None on the last."""

    sessions: list[SessionSummary]
    next_cursor: str | None


class ViewerStore(Protocol):
    """The reads behind every page of the viewer."""

    def list_sessions(self, *, prefix: str, limit: int, cursor: str | None) -> SessionPage:
        """Sessions whose id starts with ``prefix``, newest last activity first.

        ``cursor`` is a ``next_cursor`` from an earlier page; a cursor the
        store did not issue raises ValueError.
        """
        ...

    def session(self, session_id: str) -> SessionSummary | None:
        """One session's summary (its entry count), or None if unknown."""
        ...

    def window(self, session_id: str, *, offset: int, limit: int) -> list[str] | None:
        """Up to ``limit`` entries from position ``offset`` (0-based), as JSON texts.

        None for an unknown session. Sessions are append-only, so a position
        names the same entry on every read.
        """
        ...


class ReadAuth(Protocol):
    """Token checks for the sign-in page."""

    def can_read(self, token: str) -> bool:
        """True when ``token`` is valid and has the ``read`` scope (constant time)."""
        ...
