"""What every viewer route shares: the store, the token check, the cookie signer, settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ._cookie import CookieSigner
from ._source import ReadAuth, ViewerStore

__all__ = ["ViewerContext"]


@dataclass(frozen=True, slots=True)
class ViewerContext:
    store: ViewerStore
    auth: ReadAuth
    signer: CookieSigner
    #: Seconds between the live stream's looks at the store.
    live_interval: float = 0.5
    sessions_per_page: int = 50
    entries_per_page: int = 200
    #: Set when the server stops: live streams end instead of holding it up.
    stopping: threading.Event = field(default_factory=threading.Event)
