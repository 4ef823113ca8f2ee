"""SQLite engine of the store: the embedded default, nothing to install.

One table of sessions (id -> chain head, entry count, first and last
activity), one table of events, one of named tokens (hashed). Every appended
entry is one event row; its ``payload`` is the entry's JSON text as the
client sent it, so reads concatenate stored text instead of re-encoding.
Rows with ``is_entry = 0`` are teleport-only events added by tests (for
instance with a NULL payload, for the "events whose payload is null are
skipped" rule); they never show up in a read.

Appends run in batches (group commit, :mod:`._batch`), each batch inside
one ``BEGIN IMMEDIATE`` transaction, so under the database's write lock:
each append is decided in order and the accepted ones are written. A batch
is first decided from the state its requests expect (each session's head as
its Last-Uuid names it, no uuid stored yet), and the writes check that
state: the session row's update is conditional on that head, a new
session's insert fails if the session exists, and a partial unique index
on ``(session_id, uuid)`` refuses a uuid already stored. If any check
fails, the transaction rolls back and the batch is decided again from the
heads and uuids read under the lock. Nothing is stored twice, and two
writers - threads of this process or other processes sharing a file
database - can never both extend the chain from the same head.

The schema version is SQLite's ``user_version``; :data:`MIGRATIONS` upgrade
an older database on open (version 0 with tables is the first, unversioned
schema), and a newer one is refused with :class:`SchemaError`.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import threading
import uuid as uuid_module
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ._batch import plan_batch
from .base import (
    AppendRequest,
    AppendResult,
    EventRow,
    SchemaError,
    Scope,
    SessionPage,
    SessionRow,
    StoreError,
    TokenRow,
    UnknownEntryError,
    check_scope,
    check_token_name,
    event_type,
    hash_token,
    is_compaction_boundary,
    iso,
    new_token,
    now,
    session_cursor,
    session_cursor_position,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "WAL_CHECKPOINT_PAGES", "SQLiteStore"]

#: WAL pages after which a commit checkpoints them into the database file
#: (SQLite's ``wal_autocheckpoint``; its default is 1000). A batch of appends
#: to distinct sessions dirties about three pages per append (the event row,
#: a leaf of each events index, the session row), and a page written again
#: before the next checkpoint is copied once: at 1000 the checkpoints cost
#: the store about a sixth of its CPU per append. The WAL file stays below
#: this many pages plus one commit's (16 MiB at 4 KiB pages), unless another
#: connection holds a read transaction open across the checkpoint.
WAL_CHECKPOINT_PAGES = 4000

_V1 = """
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

_V2 = """
ALTER TABLE sessions ADD COLUMN entries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_activity TEXT;
ALTER TABLE sessions ADD COLUMN last_event INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET
    last_event = COALESCE((SELECT MAX(id) FROM events e WHERE e.session_id = sessions.id), 0),
    entries = (SELECT COUNT(*) FROM events e WHERE e.session_id = sessions.id AND e.is_entry = 1),
    last_activity = COALESCE(
        (SELECT MAX(created_at) FROM events e WHERE e.session_id = sessions.id), created_at);
CREATE INDEX sessions_by_recency ON sessions (last_event);
CREATE INDEX sessions_by_activity ON sessions (last_activity);
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

# Each append updates its session row, and every index on the row with it;
# the retention sweep, which runs rarely, scans the (small) sessions table
# instead of keeping an index on last_activity up to date on every append.
_V3 = """
DROP INDEX IF EXISTS sessions_by_activity;
"""

#: Schema version -> the script that upgrades the previous version to it.
MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2, 3: _V3}
SCHEMA_VERSION = max(MIGRATIONS)


class SQLiteStore:
    """Sessions and their entries in one SQLite database.

    ``path`` is a file path or ``":memory:"``. One connection serves every
    thread, guarded by a lock: SQLite has a single writer anyway. A
    ``:memory:`` database is private to its store and gone once it closes. File
    databases run in WAL mode with ``synchronous=NORMAL``: a committed entry
    survives a crash or kill of the server process (not necessarily a power
    cut); the WAL is checkpointed every :data:`WAL_CHECKPOINT_PAGES` pages.
    """

    concurrent = False

    def __init__(self, path: str, *, migrate: bool = True) -> None:
        self.path = path
        self.description = path
        self._lock = threading.Lock()
        try:
            target, uri = path, False
            if path == ":memory:":
                # The memdb VFS, not SQLite's ":memory:" pager: that one's COMMIT
                # grows with the database (2 -> 10 us per append from 18k to 90k
                # entries), memdb's does not. A fresh name keeps each store apart.
                target, uri = f"file:/ingress-{uuid_module.uuid4().hex}?vfs=memdb", True
            self._conn = sqlite3.connect(
                target, isolation_level=None, check_same_thread=False, timeout=30.0, uri=uri
            )
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self._conn.execute("PRAGMA busy_timeout=30000")
            if migrate:
                self.migrate()
            elif self._check_version() < SCHEMA_VERSION:
                raise SchemaError(
                    f"the database {path!r} has schema version {self._version()}, this server"
                    f" needs {SCHEMA_VERSION}: run `ingress-logging migrate --db {path}`"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the SQLite database {path!r}: {exc}") from None

    # --- schema -------------------------------------------------------------

    def schema_version(self) -> int:
        with self._lock:
            return self._version()

    def _version(self) -> int:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if (
            version == 0
            and self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()
        ):
            return 1  # the first schema carried no version number
        return version

    def _check_version(self) -> int:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"the database {self.path!r} has schema version {version}, newer than this"
                f" server knows ({SCHEMA_VERSION}); upgrade ingress-logging"
            )
        return version

    def migrate(self) -> list[int]:
        """Apply every missing migration, each in its own transaction; the versions applied."""
        applied: list[int] = []
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._check_version()
                for target in sorted(v for v in MIGRATIONS if v > version):
                    for statement in _statements(MIGRATIONS[target]):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {int(target)}")
                    applied.append(target)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return applied

    # --- writes -------------------------------------------------------------

    def append(
        self,
        session_id: str,
        entry: dict[str, Any],
        payload: str,
        last_uuid: str | None,
        *,
        check: bool = True,
    ) -> AppendResult:
        return self.append_batch([AppendRequest(session_id, entry, payload, last_uuid, check)])[0]

    def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        if not requests:
            return []
        with self._lock:
            assumed = _assumed_heads(requests)
            if assumed is not None:
                try:
                    return self._append_batch(requests, assumed)
                except _Stale:
                    pass
            return self._append_batch(requests, None)

    def _append_batch(
        self, requests: Sequence[AppendRequest], assumed: dict[str, str] | None
    ) -> list[AppendResult]:
        """One transaction, deciding from the database's state under its write lock.

        With ``assumed`` (see :func:`_assumed_heads`) the batch is decided from
        what its requests expect instead of reading the heads and the stored
        uuids first (two queries fewer, the common case), and the writes check
        it: a session moved whose head is not the one assumed updates no row,
        a session created that exists fails on its primary key, an entry whose
        uuid is stored fails on the unique index. Any of these rolls the whole
        transaction back and raises :class:`_Stale`; the batch is then decided
        again with ``assumed`` None, from the heads and uuids read. The session
        rows are written before the event rows, so that a stale Last-Uuid (the
        usual 409) is found before the costlier writes.
        """
        conn = self._conn
        stamp = iso(now())
        conn.execute("BEGIN IMMEDIATE")
        try:
            if assumed is None:
                heads = self._heads({r.session_id for r in requests})
                plan = plan_batch(requests, heads, self._stored(requests))
            else:
                heads = dict(assumed)
                plan = plan_batch(requests, heads, set())
            accepted = [requests[i] for i in plan.accepted]
            if not accepted:
                conn.execute("COMMIT")
                return plan.results
            # The session rows first: a wrong assumed head costs no event rows.
            # AUTOINCREMENT ids under the write lock are consecutive, in order,
            # from one above the counter (or the largest id, whichever is more).
            first = self._next_event_id()
            last_event = {r.session_id: first + n for n, r in enumerate(accepted)}
            created, moved = [], []
            for sid, c in plan.changes.items():
                if c.created:
                    created.append((sid, c.head, stamp, c.added, stamp, last_event[sid]))
                else:
                    moved.append((c.head, c.added, stamp, last_event[sid], sid, heads[sid]))
            if moved:
                updated = conn.executemany(
                    "UPDATE sessions SET head = ?, entries = entries + ?, last_activity = ?,"
                    " last_event = ? WHERE id = ? AND head IS ?",
                    moved,
                ).rowcount
                if updated != len(moved):
                    if assumed is None:
                        raise StoreError("a session head changed under the write lock")
                    raise _Stale
            try:
                if created:
                    conn.executemany(
                        "INSERT INTO sessions (id, head, created_at, entries, last_activity,"
                        " last_event) VALUES (?, ?, ?, ?, ?, ?)",
                        created,
                    )
                last = self._insert_events(accepted, stamp)
            except sqlite3.IntegrityError:
                if assumed is None:
                    raise
                raise _Stale from None
            if last != first + len(accepted) - 1:
                raise StoreError(f"event ids {first}.. expected, the last is {last}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return plan.results

    def _next_event_id(self) -> int:
        row = self._conn.execute(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
            " COALESCE((SELECT MAX(id) FROM events), 0)) + 1"
        ).fetchone()
        return int(row[0])

    def _insert_events(self, accepted: list[AppendRequest], stamp: str) -> int:
        """INSERT the entries as rows, in order, a few statements of many rows;
        the id of the last row.

        One statement per power of two of rows (18 rows: 16, then 2), so at
        most seven statement texts are prepared and cached, and the
        AUTOINCREMENT counter is read and written once a statement, not once
        a row as ``executemany`` does.
        """
        conn = self._conn
        start, last = 0, None
        while start < len(accepted):
            size = min(_CHUNK, 1 << ((len(accepted) - start).bit_length() - 1))
            params: list[Any] = []
            for r in accepted[start : start + size]:
                params += (
                    r.session_id,
                    r.uuid,
                    event_type(r.entry),
                    is_compaction_boundary(r.entry),
                    r.payload,
                    stamp,
                )
            last = conn.execute(_INSERT_EVENTS[size], params).lastrowid
            start += size
        assert last is not None
        return last

    def _heads(self, sids: set[str]) -> dict[str, str | None]:
        # one JSON array, not a placeholder a session: no limit on a batch's sessions
        rows = self._conn.execute(
            "SELECT id, head FROM sessions WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps([*sids]),),
        )
        return dict(rows.fetchall())

    def _stored(self, requests: Sequence[AppendRequest]) -> set[tuple[str, str]]:
        """The ``(session, uuid)`` pairs of these appends already stored."""
        pairs = [(r.session_id, u) for r in requests if (u := r.uuid) is not None]
        if not pairs:
            return set()
        rows = self._conn.execute(
            "SELECT e.session_id, e.uuid FROM json_each(?) AS p JOIN events AS e"
            " ON e.session_id = p.value ->> 0 AND e.uuid = p.value ->> 1",
            (json.dumps(pairs),),
        )
        return set(rows.fetchall())

    def append_foreign(self, session_id: str, entry: dict[str, Any] | None = None) -> str | None:
        if entry is None:
            entry = foreign_entry(session_id, self.head(session_id))
        result = self.append(session_id, entry, json.dumps(entry), None, check=False)
        if not result.stored:
            raise ValueError("foreign entry was refused: its uuid is already in the session")
        return result.head

    def add_event(
        self, session_id: str, payload: dict[str, Any] | None, *, event_type: str = "unknown"
    ) -> int:
        text = None if payload is None else json.dumps(payload)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                stamp = iso(now())
                conn.execute(
                    "INSERT OR IGNORE INTO sessions (id, head, created_at, entries, last_activity)"
                    " VALUES (?, NULL, ?, 0, ?)",
                    (session_id, stamp, stamp),
                )
                cur = conn.execute(
                    "INSERT INTO events (session_id, uuid, event_type, is_compaction, is_entry,"
                    " payload, created_at) VALUES (?, NULL, ?, 0, 0, ?, ?)",
                    (session_id, event_type, text, stamp),
                )
                conn.execute(
                    "UPDATE sessions SET last_activity = ?, last_event = ? WHERE id = ?",
                    (stamp, cur.lastrowid, session_id),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        assert cur.lastrowid is not None
        return cur.lastrowid

    def delete_session(self, session_id: str) -> bool:
        with self._lock:
            return self._delete_where("id = ?", (session_id,)) > 0

    def sweep(self, idle_before: datetime) -> int:
        with self._lock:
            return self._delete_where("last_activity < ?", (iso(idle_before),))

    def _delete_where(self, condition: str, params: tuple[str, ...]) -> int:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "DELETE FROM events WHERE session_id IN"
                f" (SELECT id FROM sessions WHERE {condition})",
                params,
            )
            deleted = conn.execute(f"DELETE FROM sessions WHERE {condition}", params).rowcount
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return int(deleted)

    # --- reads --------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        with self._lock:
            return self._exists(session_id)

    def _exists(self, session_id: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None

    def count_events(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0])

    def head(self, session_id: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT head FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        return None if row is None else row[0]

    def loglines(
        self, session_id: str, *, after_last_compact: bool = False, after: str | None = None
    ) -> list[str] | None:
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
            if after is not None:
                row = conn.execute(
                    "SELECT id FROM events WHERE session_id = ? AND uuid = ? AND is_entry = 1",
                    (session_id, after),
                ).fetchone()
                if row is None:
                    raise UnknownEntryError(after)
                start = max(start, row[0] + 1)
            rows = conn.execute(
                "SELECT payload FROM events WHERE session_id = ? AND id >= ? AND is_entry = 1"
                " ORDER BY id",
                (session_id, start),
            ).fetchall()
        return [r[0] for r in rows]

    def events_page(self, session_id: str, after_id: int, limit: int) -> list[EventRow] | None:
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

    def list_sessions(
        self, *, prefix: str = "", limit: int = 100, cursor: str | None = None
    ) -> SessionPage:
        where = ["substr(id, 1, ?) = ?"]
        params: list[Any] = [len(prefix), prefix]
        if cursor is not None:
            where.append("last_event < ?")
            params.append(session_cursor_position(cursor))
        params.append(limit + 1)
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, entries, created_at, last_activity, last_event FROM sessions"
                f" WHERE {' AND '.join(where)} ORDER BY last_event DESC LIMIT ?",
                params,
            ).fetchall()
        page = [SessionRow(r[0], int(r[1]), r[2], r[3]) for r in rows[:limit]]
        more = len(rows) > limit and page
        return SessionPage(page, session_cursor(rows[limit - 1][4]) if more else None)

    # --- tokens -------------------------------------------------------------

    def create_token(self, name: str, scope: Scope) -> str:
        check_token_name(name)
        check_scope(scope)
        token = new_token()
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO tokens (name, hash, scope, created_at) VALUES (?, ?, ?, ?)",
                    (name, hash_token(token), scope, iso(now())),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"a token named {name!r} exists; revoke it first") from None
        return token

    def list_tokens(self) -> list[TokenRow]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, scope, created_at FROM tokens ORDER BY name"
            ).fetchall()
        return [TokenRow(r[0], check_scope(r[1]), r[2]) for r in rows]

    def revoke_token(self, name: str) -> bool:
        with self._lock:
            cur = self._conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
        return cur.rowcount > 0

    def verify_token(self, token: str) -> TokenRow | None:
        digest = hash_token(token)
        with self._lock:
            row = self._conn.execute(
                "SELECT name, scope, created_at, hash FROM tokens WHERE hash = ?", (digest,)
            ).fetchone()
        if row is None or not hmac.compare_digest(row[3], digest):
            return None
        return TokenRow(row[0], check_scope(row[1]), row[2])

    # --- operations ---------------------------------------------------------

    def healthcheck(self) -> None:
        try:
            with self._lock:
                self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite does not answer: {exc}") from None

    def close(self) -> None:
        """Close the connection (a ``:memory:`` database is gone afterwards)."""
        with self._lock:
            self._conn.close()


_CHUNK = 64  # rows per INSERT at most: 6 bound parameters a row, far below SQLite's limit
# OR FAIL: a statement of many rows that may abort midway needs a statement
# journal (every page it touches copied first, to a temporary file past 64
# KiB); a failed batch rolls its whole transaction back anyway.
_INSERT_ROWS = (
    "INSERT OR FAIL INTO events (session_id, uuid, event_type, is_compaction, is_entry,"
    " payload, created_at) VALUES "
)
_INSERT_EVENTS = {
    1 << k: _INSERT_ROWS + ", ".join(["(?, ?, ?, ?, 1, ?, ?)"] * (1 << k))
    for k in range(_CHUNK.bit_length())
}


class _Stale(Exception):
    """A batch's assumed state was not the database's: decide it again from what is read."""


def _assumed_heads(requests: Sequence[AppendRequest]) -> dict[str, str] | None:
    """The state a batch's requests expect: each session as its first append
    there names it (a Last-Uuid: the session exists with that head; none: the
    session is new), none of their uuids stored. None when an append skips the
    head check (a foreign writer), whose outcome does not tell the head."""
    heads: dict[str, str] = {}
    seen: set[str] = set()
    for r in requests:
        if not r.check:
            return None
        if r.session_id not in seen:
            seen.add(r.session_id)
            if r.last_uuid is not None:
                heads[r.session_id] = r.last_uuid
    return heads


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def foreign_entry(session_id: str, head: str | None) -> dict[str, Any]:
    """The entry a foreign writer appends (fault injection, tests)."""
    return {
        "type": "system",
        "subtype": "foreign_write",
        "content": "appended by a foreign writer (fault injection)",
        "uuid": str(uuid_module.uuid4()),
        "sessionId": session_id,
        "timestamp": iso(now()),
        "parentUuid": head,
    }
