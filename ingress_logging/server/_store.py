"""SQLite storage for the local session-ingress server.

One table of sessions (id -> chain head) and one table of events. Every
appended entry is one event row; its ``payload`` is the entry's JSON text as
the client sent it, so reads concatenate stored text instead of re-encoding.
Rows with ``is_entry = 0`` are teleport-only events added by tests (for
instance with a NULL payload, for the "events whose payload is null are
skipped" rule); they never show up in a read.

The Last-Uuid check and the append run inside one ``BEGIN IMMEDIATE``
transaction, so two writers - threads of this process or other processes
sharing a file database - can never both extend the chain from the same head.
A partial unique index on ``(session_id, uuid)`` makes "never stored twice"
hold even if the check above it were wrong.

Session ids reach SQL only as bound parameters, never spliced into text.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid as uuid_module
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["AppendResult", "EventRow", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    head TEXT,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    uuid TEXT,
    event_type TEXT NOT NULL,
    is_compaction INTEGER NOT NULL,
    is_entry INTEGER NOT NULL,
    payload TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_uuid_once
    ON events (session_id, uuid) WHERE uuid IS NOT NULL;
"""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append attempt did.

    ``status`` is the HTTP status the server answers with (200, 201 or 409);
    ``head`` is the session's chain head after the attempt (None when the
    session has no chained entry); ``stored`` is True when a row was written.
    """

    status: int
    head: str | None
    stored: bool


@dataclass(frozen=True, slots=True)
class EventRow:
    """One teleport event as stored; ``payload`` is JSON text or None."""

    id: int
    event_type: str
    is_compaction: bool
    payload: str | None
    created_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_compaction_boundary(entry: dict[str, Any]) -> bool:
    """True for ``{"type": "system", "subtype": "compact_boundary", ...}``."""
    return entry.get("type") == "system" and entry.get("subtype") == "compact_boundary"


def _event_type(entry: dict[str, Any]) -> str:
    kind = entry.get("type")
    return kind if isinstance(kind, str) and kind else "unknown"


class Store:
    """Sessions and their entries in one SQLite database.

    ``path`` is a file path or ``":memory:"``. One connection serves every
    thread, guarded by a lock: SQLite has a single writer anyway, and a
    ``:memory:`` database only exists inside its one connection. File
    databases run in WAL mode with ``synchronous=NORMAL``: a committed entry
    survives a crash or kill of the server process (not necessarily a power cut).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)

    # --- writes -----------------------------------------------------------

    def append(
        self,
        session_id: str,
        entry: dict[str, Any],
        payload: str,
        last_uuid: str | None,
        *,
        check: bool = True,
    ) -> AppendResult:
        """Check ``last_uuid`` against the head and append, atomically.

        ``entry`` is the parsed JSON object and ``payload`` its text. With
        ``check=False`` (the foreign-writer fault) the Last-Uuid check is
        skipped but a duplicate uuid is still refused.
        """
        entry_uuid = entry.get("uuid")
        if not isinstance(entry_uuid, str):
            entry_uuid = None
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT head FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                exists = row is not None
                head: str | None = row[0] if row is not None else None
                if check and last_uuid != head:
                    conn.execute("ROLLBACK")
                    return AppendResult(409, head, stored=False)
                if entry_uuid is not None and (
                    entry_uuid == head
                    or conn.execute(
                        "SELECT 1 FROM events WHERE session_id = ? AND uuid = ?",
                        (session_id, entry_uuid),
                    ).fetchone()
                    is not None
                ):
                    conn.execute("ROLLBACK")
                    return AppendResult(409, head, stored=False)
                now = _now()
                if not exists:
                    conn.execute(
                        "INSERT INTO sessions (id, head, created_at) VALUES (?, NULL, ?)",
                        (session_id, now),
                    )
                conn.execute(
                    "INSERT INTO events (session_id, uuid, event_type, is_compaction, is_entry,"
                    " payload, created_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                    (
                        session_id,
                        entry_uuid,
                        _event_type(entry),
                        int(is_compaction_boundary(entry)),
                        payload,
                        now,
                    ),
                )
                if entry_uuid is not None:
                    conn.execute(
                        "UPDATE sessions SET head = ? WHERE id = ?", (entry_uuid, session_id)
                    )
                    head = entry_uuid
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return AppendResult(200 if exists else 201, head, stored=True)

    def append_foreign(self, session_id: str, entry: dict[str, Any] | None = None) -> str | None:
        """Append an entry as another writer would, chained onto the current head.

        Returns the head afterwards. Used by the foreign-writer fault and by tests
        that need the chain to move between two client requests.
        """
        if entry is None:
            entry = {
                "type": "system",
                "subtype": "foreign_write",
                "content": "appended by a foreign writer (fault injection)",
                "uuid": str(uuid_module.uuid4()),
                "sessionId": session_id,
                "timestamp": _now(),
            }
            entry["parentUuid"] = self.head(session_id)
        result = self.append(session_id, entry, json.dumps(entry), None, check=False)
        if not result.stored:
            raise ValueError("foreign entry was refused: its uuid is already in the session")
        return result.head

    def add_event(
        self, session_id: str, payload: dict[str, Any] | None, *, event_type: str = "unknown"
    ) -> int:
        """Add a teleport-only event (never part of a read); returns its event id.

        ``payload=None`` stores a null-payload event, which clients must skip.
        The session is created (without a head) if it does not exist.
        """
        text = None if payload is None else json.dumps(payload)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = _now()
                conn.execute(
                    "INSERT OR IGNORE INTO sessions (id, head, created_at) VALUES (?, NULL, ?)",
                    (session_id, now),
                )
                cur = conn.execute(
                    "INSERT INTO events (session_id, uuid, event_type, is_compaction, is_entry,"
                    " payload, created_at) VALUES (?, NULL, ?, 0, 0, ?, ?)",
                    (session_id, event_type, text, now),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        assert cur.lastrowid is not None
        return cur.lastrowid

    # --- reads ------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        """True once the session has at least one stored event."""
        with self._lock:
            return self._exists(session_id)

    def _exists(self, session_id: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None

    def count_events(self) -> int:
        """Rows in the events table, across sessions ("nothing stored" checks)."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0])

    def head(self, session_id: str) -> str | None:
        """The session's chain head, or None (unknown session or no chained entry)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT head FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        return None if row is None else row[0]

    def loglines(self, session_id: str, *, after_last_compact: bool = False) -> list[str] | None:
        """The session's entries as JSON texts in order; None for an unknown session.

        Teleport-only events (added by :meth:`add_event`) are excluded:
        they are not entries. With ``after_last_compact`` the list starts at
        the last compaction boundary (inclusive), or is complete if none.
        """
        with self._lock:
            conn = self._conn
            if not self._exists(session_id):
                return None
            start = 0
            if after_last_compact:
                row = conn.execute(
                    "SELECT MAX(id) FROM events"
                    " WHERE session_id = ? AND is_compaction = 1 AND is_entry = 1",
                    (session_id,),
                ).fetchone()
                start = row[0] or 0
            rows = conn.execute(
                "SELECT payload FROM events WHERE session_id = ? AND id >= ? AND is_entry = 1"
                " ORDER BY id",
                (session_id, start),
            ).fetchall()
        return [r[0] for r in rows]

    def events_page(self, session_id: str, after_id: int, limit: int) -> list[EventRow] | None:
        """Up to ``limit`` events with id > ``after_id``; None for an unknown session."""
        with self._lock:
            conn = self._conn
            if not self._exists(session_id):
                return None
            rows = conn.execute(
                "SELECT id, event_type, is_compaction, payload, created_at FROM events"
                " WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
                (session_id, after_id, limit),
            ).fetchall()
        return [EventRow(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]

    def close(self) -> None:
        """Close the connection (a ``:memory:`` database is gone afterwards)."""
        with self._lock:
            self._conn.close()
