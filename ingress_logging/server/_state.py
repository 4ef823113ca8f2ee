"""What the server's handler threads share, and what they record per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ._faults import FaultInjector
from .store import Store

__all__ = ["RequestRecord", "ServerState"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the server saw (admin requests excluded).

    ``t`` is ``time.monotonic()`` when the request line arrived, so gaps
    between records measure a client's retry schedule. ``status`` is None
    when the connection was dropped without a reply. ``fault`` names the
    injected fault, if any; ``entry_uuid`` is the PUT body's ``uuid``;
    ``query`` the raw query string (``after_last_compact=true``, a cursor).
    """

    method: str
    path: str
    session_id: str | None
    last_uuid: str | None
    status: int | None
    t: float
    fault: str | None = None
    entry_uuid: str | None = None
    query: str = ""


@dataclass
class ServerState:
    """What the handler threads share: storage, switches, credentials, limits."""

    store: Store
    faults: FaultInjector
    token: str
    oauth_token: str
    org_uuid: str | None  # None: any organization is accepted
    max_body_bytes: int
    record: Callable[[RequestRecord], None]
    stopping: threading.Event

    def __repr__(self) -> str:  # never show the tokens
        return f"ServerState(db={self.store.description!r})"
