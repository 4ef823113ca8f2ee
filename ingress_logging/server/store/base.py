"""The store interface the HTTP layer (and the viewer) talk to.

Two engines implement it: :mod:`.sqlite` (the embedded default) and
:mod:`.postgres` (for teams, N server processes on one database). Every
promise of the protocol that concerns data lives behind this seam: the
append's compare-and-set on the session head is enforced by the database
(one transaction, a unique ``(session, uuid)`` constraint), never by the
memory of one process, so any number of server processes may share a store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

__all__ = [
    "SCOPES",
    "AppendRequest",
    "AppendResult",
    "EventRow",
    "SchemaError",
    "Scope",
    "SessionPage",
    "SessionRow",
    "Store",
    "StoreError",
    "TokenRow",
    "UnknownEntryError",
    "check_scope",
    "check_token_name",
    "event_type",
    "hash_token",
    "is_compaction_boundary",
    "iso",
    "new_token",
    "now",
    "session_cursor",
    "session_cursor_position",
]

Scope = Literal["append", "read", "admin"]
#: Every scope; ``admin`` implies the other two.
SCOPES: tuple[Scope, ...] = ("append", "read", "admin")


class StoreError(Exception):
    """The store cannot be used (unreachable, unwritable, wrong schema)."""


class SchemaError(StoreError):
    """The database holds a schema this server does not know (newer, or foreign)."""


class UnknownEntryError(LookupError):
    """``after=`` names a uuid that is not an entry of the session."""


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
class AppendRequest:
    """One append: compare ``last_uuid`` with the head (unless ``check`` is
    False, a foreign writer) and store ``payload``, the entry's JSON text."""

    session_id: str
    entry: dict[str, Any]
    payload: str
    last_uuid: str | None
    check: bool = True
    #: The entry's ``uuid`` when it is a string (else None).
    uuid: str | None = field(init=False)

    def __post_init__(self) -> None:
        value = self.entry.get("uuid")
        object.__setattr__(self, "uuid", value if isinstance(value, str) else None)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One teleport event as stored; ``payload`` is JSON text or None."""

    id: int
    event_type: str
    is_compaction: bool
    payload: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session in a listing: entries stored, first and last activity (ISO 8601)."""

    id: str
    entries: int
    first_activity: str
    last_activity: str


@dataclass(frozen=True, slots=True)
class SessionPage:
    """A page of sessions, newest activity first; ``next_cursor`` None on the last."""

    sessions: list[SessionRow]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A named token as listed: never the token, never its hash."""

    name: str
    scope: Scope
    created_at: str

    def allows(self, needed: Scope) -> bool:
        return self.scope == needed or self.scope == "admin"


class Store(Protocol):
    """Sessions, their entries, and the named tokens, in one database.

    Session ids arrive validated and reach SQL only as bound parameters.
    ``concurrent`` tells the HTTP layer whether calls may run on worker
    threads in parallel (PostgreSQL, a connection pool) or are cheapest
    inline on the event loop (SQLite, one connection).
    """

    description: str
    concurrent: bool

    # --- entries ------------------------------------------------------------
    def append(
        self,
        session_id: str,
        entry: dict[str, Any],
        payload: str,
        last_uuid: str | None,
        *,
        check: bool = True,
    ) -> AppendResult:
        """Compare ``last_uuid`` with the head and append, in one transaction.

        ``check=False`` (a foreign writer) skips the head check; a uuid already
        in the session is refused either way (409, nothing stored).
        """
        ...

    def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Several appends in one transaction (group commit), each with its own result.

        Each is decided as if it were alone, in order: it sees the heads the
        earlier ones left, and a 409 for one stores nothing of it and leaves
        the others alone. Nothing is stored unless the whole batch commits.
        """
        ...

    def append_foreign(self, session_id: str, entry: dict[str, Any] | None = None) -> str | None:
        """Append as another writer would (chained onto the head); returns the head."""
        ...

    def add_event(
        self, session_id: str, payload: dict[str, Any] | None, *, event_type: str = "unknown"
    ) -> int:
        """Add a teleport-only event (never part of a read); returns its id."""
        ...

    def head(self, session_id: str) -> str | None: ...

    def exists(self, session_id: str) -> bool: ...

    def count_events(self) -> int: ...

    def loglines(
        self, session_id: str, *, after_last_compact: bool = False, after: str | None = None
    ) -> list[str] | None:
        """Entries as JSON texts in order; None for an unknown session.

        ``after_last_compact`` starts at the last compaction boundary
        (inclusive); ``after`` returns only the entries stored after the
        entry with that uuid (UnknownEntryError if it is not in the session).
        """
        ...

    def events_page(self, session_id: str, after_id: int, limit: int) -> list[EventRow] | None: ...

    # --- sessions -----------------------------------------------------------
    def list_sessions(
        self, *, prefix: str = "", limit: int = 100, cursor: str | None = None
    ) -> SessionPage:
        """Sessions whose id starts with ``prefix``, newest last activity first.

        ``cursor`` is a page's ``next_cursor`` (ValueError if it is not one).
        """
        ...

    def delete_session(self, session_id: str) -> bool:
        """Remove a session and its entries; False if it did not exist."""
        ...

    def sweep(self, idle_before: datetime) -> int:
        """Delete sessions whose last activity is before ``idle_before``; how many."""
        ...

    # --- tokens -------------------------------------------------------------
    def create_token(self, name: str, scope: Scope) -> str:
        """Store a new named token (hashed); returns the plain token, the only time."""
        ...

    def list_tokens(self) -> list[TokenRow]: ...

    def revoke_token(self, name: str) -> bool:
        """Delete the named token; False if there was none."""
        ...

    def verify_token(self, token: str) -> TokenRow | None:
        """The token's row if it is one of the stored tokens (hash compared in constant time)."""
        ...

    # --- operations ---------------------------------------------------------
    def healthcheck(self) -> None:
        """Raise StoreError unless the database answers a query."""
        ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``2026-01-01T00:00:00.000Z``: fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_compaction_boundary(entry: dict[str, Any]) -> bool:
    """True for ``{"type": "system", "subtype": "compact_boundary", ...}``."""
    return entry.get("type") == "system" and entry.get("subtype") == "compact_boundary"


def event_type(entry: dict[str, Any]) -> str:
    kind = entry.get("type")
    return kind if isinstance(kind, str) and kind else "unknown"


def new_token() -> str:
    """A fresh random token (256 bits), prefixed so that leaks are easy to grep for."""
    return f"ilt_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """SHA-256 of the token: tokens are random 256-bit strings, so no salt or
    slow hash is needed (there is no dictionary to try), and a lookup by hash
    takes the same time whatever the presented token shares with a stored one."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_scope(scope: str) -> Scope:
    for known in SCOPES:
        if scope == known:
            return known
    raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")


def check_token_name(name: str) -> str:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError("a token name is 1-64 letters, digits, '-', '_' or '.'")
    return name


def session_cursor(position: int) -> str:
    """The opaque ``next_cursor`` of a session listing: the recency position of
    the page's last session (sessions are ordered by their newest event id)."""
    return base64.urlsafe_b64encode(f"s:{position}".encode()).decode().rstrip("=")


def session_cursor_position(cursor: str) -> int:
    """The position in a :func:`session_cursor`; ValueError for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("cursor is not one this server issued") from None
    digits = text[2:]
    if not text.startswith("s:") or not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise ValueError("cursor is not one this server issued")
    return int(digits)
