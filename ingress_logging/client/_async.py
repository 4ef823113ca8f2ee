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
from collections.abc import AsyncIterator, Generator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import httpx
import pluggy

from .._host import Host
from .._session_id import validate_session_id
from ..diagnostics import DiagnosticSink
from ..protocol import Action, Done, RetryPolicy, Wait
from ._base import TRANSPORT_ERRORS, ClientBase, Request
from ._common import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    PendingAppend,
    TokenSource,
    resolve_settings,
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


class _Ready:
    """An awaitable that is already finished, so a sync method can be awaited too."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator


async def _read_capped(response: httpx.Response, cap: int, deadline: float | None) -> bytes | None:
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            return None
        if deadline is not None and time.monotonic() > deadline:
            raise httpx.ReadTimeout("response body took too long")
        chunks.append(chunk)
    return b"".join(chunks)


class AsyncSessionIngressClient(ClientBase):
    """Asyncio session-ingress client; see ``SessionIngressClient`` for the arguments.

    The operations are coroutines with the same names. ``clear_session`` and
    ``clear_all_sessions`` act at once and may also be awaited.
    """

    def __init__(
        self,
        token: TokenSource | None = None,
        base_api_url: str | None = None,
        retry_policy: RetryPolicy | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        read_timeout: float | httpx.Timeout = DEFAULT_READ_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        client: httpx.AsyncClient | None = None,
        diagnostics: DiagnosticSink | None = None,
        plugins: pluggy.PluginManager | None = None,
        allow_insecure_http: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        host: Host | None = None,
    ) -> None:
        if http_client is not None and client is not None and http_client is not client:
            raise TypeError("pass either http_client= or its alias client=, not both")
        given = http_client if http_client is not None else client
        if given is not None and not isinstance(given, httpx.AsyncClient):
            raise TypeError(f"http_client must be an httpx.AsyncClient, not {type(given).__name__}")
        super().__init__(
            resolve_settings(
                token=token,
                base_api_url=base_api_url,
                retry_policy=retry_policy,
                retry=retry,
                timeout=timeout,
                read_timeout=read_timeout,
                diagnostics=diagnostics,
                plugins=plugins,
                allow_insecure_http=allow_insecure_http,
                max_response_bytes=max_response_bytes,
                host=host,
            )
        )
        self._owns_http = given is None
        self._http = given if given is not None else httpx.AsyncClient(follow_redirects=False)
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
                self._http = httpx.AsyncClient(follow_redirects=False)
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
                self._http = httpx.AsyncClient(follow_redirects=False)
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

    def clear_session(self, session_id: str) -> _Ready:  # type: ignore[override]
        """Forget this session's head now; the result may be awaited or ignored."""
        super().clear_session(session_id)
        return _Ready()

    def clear_all_sessions(self) -> _Ready:  # type: ignore[override]
        """Forget every session's head now; the result may be awaited or ignored."""
        super().clear_all_sessions()
        return _Ready()

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
                body = await _read_capped(response, request.cap, deadline)
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
