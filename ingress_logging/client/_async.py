"""The asyncio driver: ``AsyncSessionIngressClient`` on ``httpx.AsyncClient``.

The mirror image of ``_sync``: the same ``ClientBase`` makes every decision;
this module awaits where the other blocks. Appends for one session take turns
through an ``asyncio.Lock`` (which wakes waiters first-in, first-out, so
tasks enter in the order they called); different sessions never wait for
each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import httpx

from .._session_id import validate_session_id
from ..protocol import Action, Done, Wait
from ._base import TRANSPORT_ERRORS, ClientBase, Request
from ._body import CappedBody
from ._common import (
    PendingAppend,
)

__all__ = ["AsyncSessionIngressClient"]

Reply = tuple[int, httpx.Headers, bytes | None]


class _Turn:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class AsyncSessionTurns:
    """Per-session FIFO turns for tasks; idle sessions are forgotten."""

    def __init__(self) -> None:
        self._turns: dict[str, _Turn] = {}

    @asynccontextmanager
    async def turn(self, session_id: str) -> AsyncIterator[None]:
        turn = self._turns.get(session_id)
        if turn is None:
            turn = self._turns[session_id] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0 and self._turns.get(session_id) is turn:
                del self._turns[session_id]

    def __len__(self) -> int:
        return len(self._turns)


class AsyncSessionIngressClient(ClientBase[httpx.AsyncClient]):
    """Asyncio session-ingress client; the arguments are ``ClientBase``'s.

    The operations are coroutines with the same names; ``clear_session`` and
    ``clear_all_sessions`` are plain methods (they do no I/O).
    """

    _http_type = httpx.AsyncClient

    def _init_driver(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncIterator[None] | None = None
        self._turns = AsyncSessionTurns()

    async def _http_for_this_loop(self) -> httpx.AsyncClient:
        """The connection pool for the running event loop.

        Pooled connections belong to the loop that opened them; reused from a
        later ``asyncio.run`` they fail with "Event loop is closed". So a pool
        we own is tied to its loop: an async generator parked in the loop is
        finalised by ``asyncio.run``'s ``shutdown_asyncgens()`` and closes the
        pool there, cleanly; the next loop gets a fresh one. (A pool the
        caller gave us is theirs to manage.)
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None and self._owns_http and not self._closed:
                # the old loop ended without finalising its generators
                self._http = self._new_http()
            self._loop = loop
            if self._owns_http:
                guard = self._close_with_loop(self._http)
                await anext(guard)
                self._guard = guard
        return self._http

    async def _close_with_loop(self, http: httpx.AsyncClient) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._http is http and not self._closed:
                self._loop = None
                self._http = self._new_http()
            await http.aclose()

    # -- lifecycle ---------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections, if this client opened them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_http:
            await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- transport -----------------------------------------------------------

    async def _send(self, request: Request) -> Reply | BaseException:
        http = await self._http_for_this_loop()
        try:
            built = http.build_request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                params=request.params,
                timeout=request.timeout,
            )
            response = await http.send(built, stream=True)
            try:
                deadline = None
                if request.timeout.read is not None:
                    deadline = time.monotonic() + 3 * request.timeout.read
                reader = CappedBody(response, request.cap, deadline)
                if reader.wants_more:
                    async for chunk in response.aiter_bytes():
                        if not reader.feed(chunk):
                            break
                body = reader.body
            finally:
                await response.aclose()
        except TRANSPORT_ERRORS as exc:
            return exc
        return response.status_code, response.headers, body

    # -- appends -------------------------------------------------------------

    async def advance(self, pending: PendingAppend) -> Action:
        """Perform the pending Put or Refetch and return the next action."""
        request = self.request_for(pending)
        if not isinstance(request, Request):
            return request
        return self.on_reply(pending, request, await self._send(request))

    async def append_session_log(
        self, session_id: str, entry: Mapping[str, Any], url: str | None = None
    ) -> bool:
        """Append ``entry``; True once it is in the chain. Same rules as the blocking client."""
        session_id = validate_session_id(session_id)
        async with self._turns.turn(session_id):
            pending = self.begin_append(session_id, entry, url)
            action = pending.action
            while not isinstance(action, Done):
                if isinstance(action, Wait):
                    await asyncio.sleep(action.delay)
                    action = self.resume(pending)
                else:
                    action = await self.advance(pending)
        return action.ok

    # -- reads ---------------------------------------------------------------

    async def get_session_logs(
        self, session_id: str, url: str | None = None, *, after_last_compact: bool = False
    ) -> list[dict[str, Any]] | None:
        """The session's entries; ``[]`` on 404; None on failure; 401 raises."""
        request = self.read_request(session_id, url, after_last_compact)
        if request is None:
            return None
        return self.finish_read(session_id, await self._send(request))

    async def get_session_logs_via_oauth(
        self, session_id: str, access_token: str, org_uuid: str
    ) -> list[dict[str, Any]] | None:
        """The session read with OAuth headers."""
        request = self.oauth_read_request(session_id, access_token, org_uuid)
        return self.finish_read(None, await self._send(request))

    async def get_teleport_events(
        self, session_id: str, access_token: str, org_uuid: str
    ) -> list[dict[str, Any]] | None:
        """Every event payload, page by page; None if the first page is 404 or on error."""
        url, headers, pager = self.teleport_start(session_id, access_token, org_uuid)
        while (params := pager.next_params()) is not None:
            reply = await self._send(self.teleport_request(url, headers, params))
            self.teleport_feed(pager, reply)
        return pager.result
