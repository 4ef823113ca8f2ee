"""The common append, answered by its connection without a task of its own.

Most requests a server sees are plain appends: a PUT with the development
token (or, on a store that answers inline, a named token with the append
scope), a valid body, no fault armed, nothing earlier on its connection still
waiting to queue. :func:`start_direct_append` checks such a request where it
was parsed, queues it in the group commit with a :class:`DirectAppend` as
its waiter, and that waiter writes the reply into the request's slot when the
batch commits: no task, no coroutine chain, no future.

Anything else is refused here (the function returns False) and goes the
general way, through an :class:`~._exchange.Exchange`, which answers it by
the same rules: a request whose credentials fail or need a pooled store's
lookup (PostgreSQL, on a worker thread), an armed fault or injected latency
(which may hold the reply or drop the connection), an invalid one (its
400/401 is written there), or one behind a request on its connection that
has not queued yet (wire order). Both ways record,
count and log a request alike, and a reply leaves only after its commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import orjson

from .._session_id import validate_session_id
from ..errors import InvalidSessionIdError
from ._exchange import SESSION_PREFIX, same_secret
from ._metrics import ACCESS_LOGGER, access_line
from ._routes import CONFLICT, append_request, conflict_headers
from ._state import RequestRecord, ServerState
from ._wire import ERROR_TYPES, Reply, json_reply
from .store import AppendResult

if TYPE_CHECKING:
    from ._asgi import IngressApp
    from ._http import HttpConnection, _Slot

__all__ = ["DirectAppend", "start_direct_append"]

logger = logging.getLogger("ingress_logging.server")


def start_direct_append(
    app: IngressApp,
    conn: HttpConnection,
    slot: _Slot,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    *,
    close: bool,
) -> bool:
    """Queue the append of a plain PUT and answer it on commit; False: not
    plain, the caller hands the request to an Exchange (which answers it)."""
    state = app.state
    if not state.faults.quiet:
        return False
    auth = headers.get("authorization")
    if auth is None or not _may_append(state, auth):
        return False
    raw = path[len(SESSION_PREFIX) :]
    if "/" in raw or "%" in raw:
        return False
    try:
        sid = validate_session_id(raw)
        request = append_request(sid, headers, body)
    except (InvalidSessionIdError, Reply):
        return False
    t = time.monotonic()
    waiter = DirectAppend(state, conn, slot, t, path, query, request.uuid, request.last_uuid, close)
    app.group_commit.enqueue(request, waiter)
    return True


def _may_append(state: ServerState, auth: str) -> bool:
    """The Authorization header, exactly as clients send it, carries the
    development token, or a named token with the append scope when the store
    answers inline (SQLite: the Exchange would look it up on the loop all the
    same). Anything else - another spelling, a token that fails, a pooled
    store - is left to the Exchange, which asks again and answers it."""
    token = state.token
    if token is not None and same_secret(auth, "Bearer " + token):
        return True
    store = state.store
    if store.concurrent or not auth.startswith("Bearer "):
        return False
    try:
        row = store.verify_token(auth[7:])
    except Exception:  # the Exchange's lookup fails too, and answers 503
        return False
    return row is not None and row.allows("append")


class DirectAppend:
    """One queued plain append: the :class:`~._group_commit.AppendWaiter` that
    answers it on its connection when its batch is over."""

    __slots__ = (
        "close",
        "conn",
        "entry_uuid",
        "last_uuid",
        "path",
        "query",
        "slot",
        "state",
        "t",
    )

    def __init__(
        self,
        state: ServerState,
        conn: HttpConnection,
        slot: _Slot,
        t: float,
        path: str,
        query: str,
        entry_uuid: str | None,
        last_uuid: str | None,
        close: bool,
    ) -> None:
        self.state = state
        self.conn = conn
        self.slot = slot
        self.t = t
        self.path = path
        self.query = query
        self.entry_uuid = entry_uuid
        self.last_uuid = last_uuid
        self.close = close

    def cancelled(self) -> bool:
        return False

    def settle(self, result: AppendResult | None, exc: BaseException | None) -> None:
        state = self.state
        extra: dict[str, str] | None = None
        if result is None:
            if isinstance(exc, asyncio.CancelledError):  # the loop is closing: no reply
                self._account(None, 0)
                self.conn.finish(self.slot)
                return
            state.metrics.store_error()
            logger.error("ingress server: the store failed", exc_info=exc)
            status, message, extra = 503, "the store is unavailable", {"Retry-After": "1"}
        elif result.stored:
            status, message = result.status, None
            body = orjson.dumps({"stored": True, "head": result.head})
        else:
            status, message = 409, CONFLICT
            extra = conflict_headers(result, state.faults)
        if message is not None:
            kind = ERROR_TYPES.get(status, "api_error")
            body = orjson.dumps({"error": {"message": message, "type": kind}})
        self._account(status, len(body))
        data = json_reply(status, body, extra, close=self.close)
        self.conn.write(self.slot, data, complete=True, close=self.close)

    def _account(self, status: int | None, size: int) -> None:
        """Record, count and log the request before its reply goes out, as
        :class:`~._exchange.Exchange` does."""
        state = self.state
        if state.record is not None:
            sid = self.path[len(SESSION_PREFIX) :]
            state.record(
                RequestRecord(
                    "PUT",
                    self.path,
                    sid,
                    self.last_uuid,
                    status,
                    self.t,
                    None,
                    self.entry_uuid,
                    self.query,
                )
            )
        seconds = time.monotonic() - self.t
        state.metrics.observe("append", status, seconds)
        if state.access_log:
            ACCESS_LOGGER.info(
                access_line(
                    method="PUT",
                    path=self.path,
                    status=status,
                    seconds=seconds,
                    size=size,
                    peer=self.conn.peer,
                    fault=None,
                )
            )
