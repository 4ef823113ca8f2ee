"""The viewer's reads over the server's store (``ingress_logging.server.store``).

The server's store reads a session whole, or after an entry (``loglines(...,
after=uuid)``); the session page wants windows of it and a live count. So
each session the viewer shows is copied once and then kept current with one
``after=`` read of what is new per request: cheap at any size, correct because
sessions are append-only. Copies are dropped oldest first beyond
``max_chars`` characters in all.
"""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson

from ._source import SessionPage, SessionSummary

__all__ = ["SessionReads", "StoreAuth", "StoreViewer", "TokenReads"]


class _Row(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def entries(self) -> int: ...
    @property
    def first_activity(self) -> str | None: ...
    @property
    def last_activity(self) -> str | None: ...


class _Page(Protocol):
    @property
    def sessions(self) -> Sequence[_Row]: ...
    @property
    def next_cursor(self) -> str | None: ...


class SessionReads(Protocol):
    """What the viewer uses of the server's store to read sessions."""

    def list_sessions(
        self, *, prefix: str = "", limit: int = 100, cursor: str | None = None
    ) -> _Page: ...

    def loglines(
        self, session_id: str, *, after_last_compact: bool = False, after: str | None = None
    ) -> list[str] | None:
        """Raises a LookupError when ``after`` names no entry of the session."""
        ...


class _TokenRow(Protocol):
    def allows(self, needed: Literal["read"]) -> bool: ...


class TokenReads(Protocol):
    """What the viewer uses of the server's store to check a token."""

    def verify_token(self, token: str) -> _TokenRow | None: ...


@dataclass(slots=True)
class _Copy:
    texts: list[str]
    #: uuid of the last entry that has one, and its position (-1: none yet)
    anchor: str | None = None
    anchor_at: int = -1
    chars: int = 0

    def extend(self, new: list[str]) -> None:
        start = len(self.texts)
        self.texts.extend(new)
        self.chars += sum(len(text) for text in new)
        for position in range(len(self.texts) - 1, start - 1, -1):
            try:
                entry = orjson.loads(self.texts[position])
            except orjson.JSONDecodeError:
                continue
            uuid = entry.get("uuid") if isinstance(entry, dict) else None
            if isinstance(uuid, str):
                self.anchor, self.anchor_at = uuid, position
                return


class StoreViewer:
    """:class:`~._source.ViewerStore` over the server's store."""

    def __init__(self, store: SessionReads, *, max_chars: int = 256 * 1024 * 1024) -> None:
        self._store = store
        self._max_chars = max_chars
        self._copies: OrderedDict[str, _Copy] = OrderedDict()
        self._lock = threading.Lock()

    def list_sessions(self, *, prefix: str, limit: int, cursor: str | None) -> SessionPage:
        page = self._store.list_sessions(prefix=prefix, limit=limit, cursor=cursor)
        return SessionPage(
            [
                SessionSummary(row.id, row.entries, row.first_activity, row.last_activity)
                for row in page.sessions
            ],
            page.next_cursor,
        )

    def session(self, session_id: str) -> SessionSummary | None:
        copy = self._current(session_id)
        return None if copy is None else SessionSummary(session_id, len(copy.texts), None, None)

    def window(self, session_id: str, *, offset: int, limit: int) -> list[str] | None:
        copy = self._current(session_id)
        return None if copy is None else copy.texts[offset : offset + limit]

    def _current(self, session_id: str) -> _Copy | None:
        with self._lock:
            copy = self._copies.pop(session_id, None)
            if copy is not None and not self._catch_up(session_id, copy):
                copy = None
            if copy is None:
                texts = self._store.loglines(session_id)
                if texts is None:
                    return None
                copy = _Copy([])
                copy.extend(texts)
            return self._keep(session_id, copy)

    def _catch_up(self, session_id: str, copy: _Copy) -> bool:
        """Add what was stored since; False when the session must be read whole again."""
        if copy.anchor is None:
            return False
        try:
            tail = self._store.loglines(session_id, after=copy.anchor)
        except LookupError:  # deleted and written again: the anchor is gone
            return False
        known = len(copy.texts) - copy.anchor_at - 1
        if tail is None or len(tail) < known:
            return False
        copy.extend(tail[known:])
        return True

    def _keep(self, session_id: str, copy: _Copy) -> _Copy:
        self._copies[session_id] = copy
        held = sum(kept.chars for kept in self._copies.values())
        while held > self._max_chars and len(self._copies) > 1:
            _, dropped = self._copies.popitem(last=False)
            held -= dropped.chars
        return copy


class StoreAuth:
    """Who may sign in: a stored token with the ``read`` scope (or ``admin``), or the
    development token given to ``serve --token``. Both checks always run."""

    def __init__(self, store: TokenReads, dev_token: str | None = None) -> None:
        self._store = store
        self._dev = dev_token.encode("utf-8", "surrogatepass") if dev_token else None

    def __repr__(self) -> str:
        return "StoreAuth(<tokens>)"

    def can_read(self, token: str) -> bool:
        given = token.encode("utf-8", "surrogatepass")
        dev = self._dev is not None and hmac.compare_digest(given, self._dev)
        row = self._store.verify_token(token)
        return dev or (row is not None and row.allows("read"))
