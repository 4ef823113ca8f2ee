"""What the server's handler threads share, and what they record per request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ._faults import FaultInjector
from ._metrics import Metrics
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
    """What every request shares: storage, switches, credentials, limits, counters.

    ``token`` is the development token (every scope; None: named tokens
    only); ``record`` receives each :class:`RequestRecord` (None: not kept).
    """

    store: Store
    faults: FaultInjector
    token: str | None
    oauth_token: str
    org_uuid: str | None  # None: any organization is accepted
    max_body_bytes: int
    record: Callable[[RequestRecord], None] | None
    metrics: Metrics = field(default_factory=Metrics)
    access_log: bool = False  # one JSON line per request on ACCESS_LOGGER

    def __repr__(self) -> str:  # never show the tokens
        return f"ServerState(db={self.store.description!r})"
