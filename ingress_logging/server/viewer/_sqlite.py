"""The viewer's reads over the local server's SQLite :class:`Store`.

Reads share the store's one connection under its lock (a ``:memory:``
database exists only inside that connection). Listing aggregates the events
table per session; keyset pagination on (last activity, id) keeps a page
stable while new sessions arrive.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from .._store import Store
from ._source import SessionPage, SessionSummary

__all__ = ["SQLiteViewerStore", "TokenAuth"]

_LIST = """
SELECT session_id, COUNT(*), MIN(created_at), MAX(created_at) FROM events
WHERE is_entry = 1 AND substr(session_id, 1, ?) = ?
GROUP BY session_id
HAVING ? IS NULL OR MAX(created_at) < ? OR (MAX(created_at) = ? AND session_id < ?)
ORDER BY MAX(created_at) DESC, session_id DESC
LIMIT ?
"""


def _encode_cursor(last_activity: str, session_id: str) -> str:
    raw = json.dumps([last_activity, session_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("cursor is not one this server issued") from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError("cursor is not one this server issued")
    return value[0], value[1]


class SQLiteViewerStore:
    """:class:`~._source.ViewerStore` over the local server's :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list_sessions(self, *, prefix: str, limit: int, cursor: str | None) -> SessionPage:
        after = _decode_cursor(cursor) if cursor is not None else None
        last, sid = after if after is not None else (None, None)
        with self._store._lock:
            rows = self._store._conn.execute(
                _LIST, (len(prefix), prefix, last, last, last, sid, limit + 1)
            ).fetchall()
        sessions = [SessionSummary(r[0], int(r[1]), r[2], r[3]) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = (
            _encode_cursor(sessions[-1].last_activity or "", sessions[-1].id) if more else None
        )
        return SessionPage(sessions, next_cursor)

    def session(self, session_id: str) -> SessionSummary | None:
        with self._store._lock:
            conn = self._store._conn
            known = conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if known is None:
                return None
            row = conn.execute(
                "SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM events"
                " WHERE session_id = ? AND is_entry = 1",
                (session_id,),
            ).fetchone()
        return SessionSummary(session_id, int(row[0]), row[1], row[2])

    def window(self, session_id: str, *, offset: int, limit: int) -> list[str] | None:
        with self._store._lock:
            conn = self._store._conn
            known = conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if known is None:
                return None
            rows = conn.execute(
                "SELECT payload FROM events WHERE session_id = ? AND is_entry = 1"
                " ORDER BY id LIMIT ? OFFSET ?",
                (session_id, limit, offset),
            ).fetchall()
        return [r[0] for r in rows]


class TokenAuth:
    """The development server's single token: it may read (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8", "surrogatepass")

    def __repr__(self) -> str:
        return "TokenAuth(<token>)"

    def can_read(self, token: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._token)
