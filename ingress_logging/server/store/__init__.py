"""Where the server keeps sessions and tokens: one interface, two engines.

``open_store(url)`` picks the engine from the address: ``postgresql://...``
(or ``postgres://``) is PostgreSQL (the ``postgres`` extra), anything else a
SQLite path or ``:memory:``.
"""

from __future__ import annotations

from .base import (
    SCOPES,
    AppendRequest,
    AppendResult,
    EventRow,
    SchemaError,
    Scope,
    SessionPage,
    SessionRow,
    Store,
    StoreError,
    TokenRow,
    UnknownEntryError,
    check_scope,
)
from .sqlite import SQLiteStore

__all__ = [
    "SCOPES",
    "AppendRequest",
    "AppendResult",
    "EventRow",
    "SQLiteStore",
    "SchemaError",
    "Scope",
    "SessionPage",
    "SessionRow",
    "Store",
    "StoreError",
    "TokenRow",
    "UnknownEntryError",
    "check_scope",
    "is_postgres_url",
    "open_store",
]


def is_postgres_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def open_store(db: str, *, migrate: bool = True) -> Store:
    """The store at ``db``, its schema upgraded unless ``migrate=False``
    (then an old schema is refused, never misread)."""
    if is_postgres_url(db):
        from .postgres import PostgresStore

        return PostgresStore(db, migrate=migrate)
    return SQLiteStore(db, migrate=migrate)
