"""Spool mode's submit: build, fill and prepare on the caller's thread, persist, queue.

With a spool, an entry must be complete before its row is written: a replay
after a crash resends the same ``uuid`` (the server's 409 recovery makes a
resend harmless) and a redaction plugin must never run on it twice. The
``parentUuid`` of each entry is assigned here, from the chain of *submitted*
entries, under one lock from the fill to the enqueue, so concurrent
submitters cannot interleave the chain.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from .._host import Host
from .._session_id import validate_session_id
from ._seams import Spool
from ._session import estimate_size, fill_entry
from ._types import DROP_BUILD_ERROR, DROP_PREPARE

__all__ = ["SpooledSubmit"]


class _Enqueue(Protocol):
    def __call__(
        self,
        session_id: str,
        entry: dict[str, Any],
        record: object,
        size: int,
        spool_key: object,
        *,
        filled_parent: bool = False,
    ) -> bool: ...


class SpooledSubmit:
    """The spool, and spool mode's chain of submitted entries (an LRU of heads)."""

    def __init__(
        self,
        spool: Spool,
        *,
        host: Host,
        enqueue: _Enqueue,
        refuse: Callable[[str | None, str], None],
        max_parents: int,
    ) -> None:
        self.spool = spool
        self._host = host
        self._enqueue = enqueue
        self._refuse = refuse
        self._max_parents = max_parents
        self._lock = threading.Lock()
        self._parents: OrderedDict[str, str] = OrderedDict()

    def submit(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        record: object,
        size: int,
    ) -> bool:
        """Build, fill and prepare now, persist, then queue; False when refused (counted)."""
        with self._lock:
            try:
                built = entry() if callable(entry) else entry
            except Exception:
                built = None
            if not isinstance(built, dict):
                return self._refused(session_id, DROP_BUILD_ERROR)
            filled = fill_entry(built, session_id, self._parents.get(session_id))
            prepared = self._host.prepare_entry(built, record)
            if prepared is None:
                return self._refused(session_id, DROP_PREPARE)
            key = self.spool.accept(session_id, prepared)
            if key is None:
                return self._refused(session_id, "spool_full")
            accepted = self._enqueue(session_id, prepared, record, size, key, filled_parent=filled)
            uuid = prepared.get("uuid")
            if accepted and isinstance(uuid, str) and uuid:
                self._set_parent(session_id, uuid)
            return accepted

    def replay(self) -> None:
        """Queue the entries an earlier run spooled and never acknowledged, in order.

        They were built, filled and prepared then, and their rows are on disk
        already (``accept`` recognises them and returns the row's key).
        """
        for session_id, entry in self.spool.replay():
            key = self.spool.accept(session_id, entry)
            try:
                validate_session_id(session_id)
            except ValueError:  # a damaged row: it can name no session (counted, no gap)
                self.spool.acknowledge(key)
                self._refuse(None, DROP_BUILD_ERROR)
                continue
            uuid = entry.get("uuid")
            if isinstance(uuid, str) and uuid:
                self._set_parent(session_id, uuid)
            self._enqueue(session_id, entry, None, estimate_size(entry, None), key)

    def _refused(self, session_id: str, reason: str) -> bool:
        self._refuse(session_id, reason)
        return False

    def _set_parent(self, session_id: str, uuid: str) -> None:
        parents = self._parents
        parents[session_id] = uuid
        parents.move_to_end(session_id)
        if len(parents) > self._max_parents:
            # Its next entry: parentUuid null until the first 409 names the head
            # (the transport rewrites it then, docs/delivery.md).
            parents.popitem(last=False)
