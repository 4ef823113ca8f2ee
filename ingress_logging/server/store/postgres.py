"""PostgreSQL engine of the store: for teams, any number of server processes on one database.

psycopg 3 with its connection pool (``psycopg_pool``), the ``postgres``
extra. Calls are synchronous and run on the HTTP layer's worker threads
(``concurrent = True``), one pooled connection each.

The append's compare-and-set is the database's. Appends run in batches
(group commit, :mod:`._batch`), one transaction each: the batch's sessions
are created if missing (``INSERT ... ON CONFLICT DO NOTHING``, so two first
appends race on the primary key, not in memory) and locked
(``SELECT ... FOR UPDATE``, in id order), the uuids they already hold are
read, each append is decided in order, and the accepted entries are
inserted and the heads moved by one statement. Two writers - threads,
processes, machines - on one session are serialised by PostgreSQL and
exactly one wins. A unique index on ``(session_id, uuid)`` keeps "stored
once" true beneath that. The statements of each half go in one pipeline:
two round trips to the database per batch.

Migrations are numbered; ``schema_version`` holds the applied one. They run
under a transaction-scoped advisory lock, so replicas starting together
apply each exactly once; a database newer than this code is refused.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

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
from .sqlite import foreign_entry

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]

_V1 = """
CREATE TABLE sessions (
    id text PRIMARY KEY,
    head text,
    created_at timestamptz NOT NULL,
    entries bigint NOT NULL DEFAULT 0,
    last_activity timestamptz NOT NULL,
    last_event bigint NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_recency ON sessions (last_event);
CREATE INDEX sessions_by_activity ON sessions (last_activity);
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    session_id text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    uuid text,
    event_type text NOT NULL,
    is_compaction boolean NOT NULL,
    is_entry boolean NOT NULL,
    payload text,
    created_at timestamptz NOT NULL
);
CREATE INDEX events_by_session ON events (session_id, id);
CREATE UNIQUE INDEX events_uuid_once ON events (session_id, uuid) WHERE uuid IS NOT NULL
"""

_V2 = """
CREATE TABLE tokens (
    name text PRIMARY KEY,
    hash text NOT NULL UNIQUE,
    scope text NOT NULL,
    created_at timestamptz NOT NULL
)
"""

#: Schema version -> the statements that upgrade the previous version to it.
MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2}
SCHEMA_VERSION = max(MIGRATIONS)
#: Key of the advisory lock held while migrating ("ingress" in ASCII).
_MIGRATION_LOCK = 0x696E6772657373


def _safe(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    return f"postgresql://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


class PostgresStore:
    """The store in PostgreSQL; ``url`` is a libpq URL (``postgresql://user:pw@host/db``)."""

    concurrent = True

    def __init__(
        self, url: str, *, migrate: bool = True, min_size: int = 1, max_size: int = 8
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise StoreError(
                "PostgreSQL needs the postgres extra: pip install 'ingress-logging[postgres]'"
            ) from None
        self.description = _safe(url)
        try:  # one direct attempt first: the pool would retry until its timeout
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.description}: {_reason(exc)}") from None
        self._unique_violation = psycopg.errors.UniqueViolation
        self._deadlock = psycopg.errors.DeadlockDetected
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name="ingress-logging",
            kwargs={"autocommit": False},
        )
        try:
            self._pool.open(wait=True, timeout=10.0)
        except Exception as exc:
            self._pool.close()
            raise StoreError(f"cannot connect to {self.description}: {_reason(exc)}") from None
        try:
            if migrate:
                self.migrate()
            else:
                version = self.schema_version()
                if version != SCHEMA_VERSION:
                    self._refuse(version)
        except BaseException:
            self._pool.close()
            raise

    def _refuse(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"{self.description} has schema version {version}, newer than this server"
                f" knows ({SCHEMA_VERSION}); upgrade ingress-logging"
            )
        raise SchemaError(
            f"{self.description} has schema version {version}, this server needs"
            f" {SCHEMA_VERSION}: run `ingress-logging migrate --db ...`"
        )

    # --- schema -------------------------------------------------------------

    def schema_version(self) -> int:
        with self._pool.connection() as conn:
            return self._version(conn)

    @staticmethod
    def _version(conn: Any) -> int:
        exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def migrate(self, *, up_to: int | None = None) -> list[int]:
        """Apply the missing migrations (up to ``up_to``) in one transaction."""
        target = SCHEMA_VERSION if up_to is None else up_to
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                self._refuse(version)
            applied = []
            for number in sorted(v for v in MIGRATIONS if version < v <= target):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                applied.append(number)
            if applied:
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (%s)", (applied[-1],))
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
        try:
            return self._append_batch(requests)
        except (self._unique_violation, self._deadlock) as exc:
            # Only a writer that does not lock the session row first could
            # cause these; the batch rolled back, so each append goes alone.
            if len(requests) == 1:
                raise StoreError(f"append failed: {_reason(exc)}") from None
            return [self._append_batch([request])[0] for request in requests]

    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        stamp = now()
        sids = sorted({r.session_id for r in requests})
        pairs = [(r.session_id, u) for r in requests if (u := r.uuid) is not None]
        with self._pool.connection() as conn:
            with conn.pipeline():
                # Sessions are created (or found) and locked in id order, so two
                # batches sharing sessions wait for each other, never deadlock.
                created_cur = conn.execute(
                    "INSERT INTO sessions (id, head, created_at, last_activity)"
                    " SELECT id, NULL, %s, %s FROM unnest(%s::text[]) AS id"
                    " ON CONFLICT (id) DO NOTHING RETURNING id",
                    (stamp, stamp, sids),
                )
                locked_cur = conn.execute(
                    "SELECT id, head FROM sessions WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                    (sids,),
                )
                stored_cur = conn.execute(
                    "SELECT e.session_id, e.uuid FROM events e"
                    " JOIN unnest(%s::text[], %s::text[]) AS p(sid, uuid)"
                    " ON e.session_id = p.sid AND e.uuid = p.uuid",
                    ([p[0] for p in pairs], [p[1] for p in pairs]),
                )
            created = {row[0] for row in created_cur.fetchall()}
            heads = {sid: head for sid, head in locked_cur.fetchall() if sid not in created}
            plan = plan_batch(requests, heads, {(r[0], r[1]) for r in stored_cur.fetchall()})
            accepted = [requests[i] for i in plan.accepted]
            changed = list(plan.changes.items())
            unused = [sid for sid in created if sid not in plan.changes]
            with conn.pipeline():
                if accepted:
                    conn.execute(
                        "WITH added AS ("
                        " INSERT INTO events (session_id, uuid, event_type, is_compaction,"
                        " is_entry, payload, created_at)"
                        " SELECT sid, uuid, kind, compaction, true, payload, %s"
                        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::bool[], %s::text[])"
                        " WITH ORDINALITY AS a(sid, uuid, kind, compaction, payload, n) ORDER BY n"
                        " RETURNING session_id, id),"
                        " last AS (SELECT session_id, max(id) AS id FROM added GROUP BY session_id)"
                        " UPDATE sessions s SET head = c.head, entries = s.entries + c.added,"
                        " last_activity = %s, last_event = last.id"
                        " FROM unnest(%s::text[], %s::text[], %s::int[])"
                        " AS c(sid, head, added), last"
                        " WHERE s.id = c.sid AND last.session_id = c.sid",
                        (
                            stamp,
                            [r.session_id for r in accepted],
                            [r.uuid for r in accepted],
                            [event_type(r.entry) for r in accepted],
                            [is_compaction_boundary(r.entry) for r in accepted],
                            [r.payload for r in accepted],
                            stamp,
                            [sid for sid, _ in changed],
                            [change.head for _, change in changed],
                            [change.added for _, change in changed],
                        ),
                    )
                if unused:  # created for an append that was refused: as if never made
                    conn.execute("DELETE FROM sessions WHERE id = ANY(%s)", (unused,))
        return plan.results

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
        stamp = now()
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO sessions (id, head, created_at, last_activity)"
                " VALUES (%s, NULL, %s, %s) ON CONFLICT (id) DO NOTHING",
                (session_id, stamp, stamp),
            )
            event_id = int(
                conn.execute(
                    "INSERT INTO events (session_id, uuid, event_type, is_compaction, is_entry,"
                    " payload, created_at) VALUES (%s, NULL, %s, false, false, %s, %s)"
                    " RETURNING id",
                    (session_id, event_type, text, stamp),
                ).fetchone()[0]  # type: ignore[index]  # RETURNING always yields the row
            )
            conn.execute(
                "UPDATE sessions SET last_activity = %s, last_event = %s WHERE id = %s",
                (stamp, event_id, session_id),
            )
        return event_id

    def delete_session(self, session_id: str) -> bool:
        with self._pool.connection() as conn:
            return conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,)).rowcount > 0

    def sweep(self, idle_before: datetime) -> int:
        with self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM sessions WHERE last_activity < %s", (idle_before,))
            return int(cur.rowcount)

    # --- reads --------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        with self._pool.connection() as conn:
            return _exists(conn, session_id)

    def count_events(self) -> int:
        with self._pool.connection() as conn:
            return int(_one(conn.execute("SELECT COUNT(*) FROM events").fetchone())[0])

    def head(self, session_id: str) -> str | None:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT head FROM sessions WHERE id = %s", (session_id,)).fetchone()
        return None if row is None else row[0]

    def loglines(
        self, session_id: str, *, after_last_compact: bool = False, after: str | None = None
    ) -> list[str] | None:
        with self._pool.connection() as conn:
            # one snapshot for the existence check and the rows
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if (
                conn.execute("SELECT 1 FROM sessions WHERE id = %s", (session_id,)).fetchone()
                is None
            ):
                return None
            start = 0
            if after_last_compact:
                row = conn.execute(
                    "SELECT MAX(id) FROM events"
                    " WHERE session_id = %s AND is_compaction AND is_entry",
                    (session_id,),
                ).fetchone()
                start = _one(row)[0] or 0
            if after is not None:
                row = conn.execute(
                    "SELECT id FROM events WHERE session_id = %s AND uuid = %s AND is_entry",
                    (session_id, after),
                ).fetchone()
                if row is None:
                    raise UnknownEntryError(after)
                start = max(start, row[0] + 1)
            rows = conn.execute(
                "SELECT payload FROM events WHERE session_id = %s AND id >= %s AND is_entry"
                " ORDER BY id",
                (session_id, start),
            ).fetchall()
        return [r[0] for r in rows]

    def events_page(self, session_id: str, after_id: int, limit: int) -> list[EventRow] | None:
        with self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if (
                conn.execute("SELECT 1 FROM sessions WHERE id = %s", (session_id,)).fetchone()
                is None
            ):
                return None
            rows = conn.execute(
                "SELECT id, event_type, is_compaction, payload, created_at FROM events"
                " WHERE session_id = %s AND id > %s ORDER BY id LIMIT %s",
                (session_id, after_id, limit),
            ).fetchall()
        return [EventRow(r[0], r[1], bool(r[2]), r[3], iso(r[4])) for r in rows]

    def list_sessions(
        self, *, prefix: str = "", limit: int = 100, cursor: str | None = None
    ) -> SessionPage:
        where = ["left(id, %s) = %s"]
        params: list[Any] = [len(prefix), prefix]
        if cursor is not None:
            where.append("last_event < %s")
            params.append(session_cursor_position(cursor))
        params.append(limit + 1)
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, entries, created_at, last_activity, last_event FROM sessions"
                f" WHERE {' AND '.join(where)} ORDER BY last_event DESC LIMIT %s",
                params,
            ).fetchall()
        page = [SessionRow(r[0], int(r[1]), iso(r[2]), iso(r[3])) for r in rows[:limit]]
        more = len(rows) > limit and page
        return SessionPage(page, session_cursor(rows[limit - 1][4]) if more else None)

    # --- tokens -------------------------------------------------------------

    def create_token(self, name: str, scope: Scope) -> str:
        import psycopg

        check_token_name(name)
        check_scope(scope)
        token = new_token()
        try:
            with self._pool.connection() as conn:
                conn.execute(
                    "INSERT INTO tokens (name, hash, scope, created_at) VALUES (%s, %s, %s, %s)",
                    (name, hash_token(token), scope, now()),
                )
        except psycopg.errors.UniqueViolation:
            raise ValueError(f"a token named {name!r} exists; revoke it first") from None
        return token

    def list_tokens(self) -> list[TokenRow]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT name, scope, created_at FROM tokens ORDER BY name"
            ).fetchall()
        return [TokenRow(r[0], check_scope(r[1]), iso(r[2])) for r in rows]

    def revoke_token(self, name: str) -> bool:
        with self._pool.connection() as conn:
            return conn.execute("DELETE FROM tokens WHERE name = %s", (name,)).rowcount > 0

    def verify_token(self, token: str) -> TokenRow | None:
        digest = hash_token(token)
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT name, scope, created_at, hash FROM tokens WHERE hash = %s", (digest,)
            ).fetchone()
        if row is None or not hmac.compare_digest(row[3], digest):
            return None
        return TokenRow(row[0], check_scope(row[1]), iso(row[2]))

    # --- operations ---------------------------------------------------------

    def healthcheck(self) -> None:
        try:
            with self._pool.connection(timeout=5.0) as conn:
                conn.execute("SELECT 1").fetchone()
        except Exception as exc:
            raise StoreError(f"{self.description} does not answer: {_reason(exc)}") from None

    def close(self) -> None:
        self._pool.close()


def _one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row a statement always returns (an aggregate, RETURNING, a locked row)."""
    if row is None:
        raise StoreError("the database returned no row where one was certain")
    return row


def _exists(conn: Any, session_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sessions WHERE id = %s", (session_id,)).fetchone() is not None
    )


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without the connection string."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
