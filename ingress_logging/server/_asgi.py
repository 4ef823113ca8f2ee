"""The session-ingress server as an ASGI application: routes and protocol rules.

Routes (everything else is a 404, a known path with another method a 405;
every error reply is JSON ``{"error": {"message": ..., "type": ...}}``)::

    PUT    /v1/session_ingress/session/{sid}        append          (append scope)
    GET    /v1/session_ingress/session/{sid}        read, ?after=   (read scope, or OAuth)
    DELETE /v1/session_ingress/session/{sid}        delete          (admin scope)
    GET    /v1/session_ingress/sessions             list sessions   (read scope)
    GET    /v1/code/sessions/{sid}/teleport-events  events          (OAuth bearer)
    GET|POST|DELETE /_admin/faults                  fault switches  (admin scope)
    GET    /healthz, /metrics                       operations      (no credentials)
    anything else                                   the web viewer, when one is mounted

Every request is fully validated (auth, framing, content type, JSON shape,
session id) before anything is stored, so bad input gets a 4xx and leaves
the store untouched. :class:`IngressApp` can be mounted in any ASGI server;
``serve`` and ``run_server`` run it on this package's own HTTP/1.1
protocol (:mod:`._http`), which calls :meth:`IngressApp.exchange` directly
and alone can close a connection without a reply (the lost-reply fault;
under another ASGI server that fault answers 500 instead).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._direct_append import start_direct_append
from ._exchange import Exchange, Responder, check_length, is_api_path
from ._group_commit import GroupCommit
from ._state import ServerState
from ._wire import Reply

if TYPE_CHECKING:
    from ._http import HttpConnection, _Slot

__all__ = ["IngressApp"]


class IngressApp:
    """ASGI 3 application over one :class:`ServerState`.

    ``fallback`` (the web viewer, ``ingress_logging.server.viewer``) answers
    every path that is not the protocol's or operations'.
    """

    def __init__(self, state: ServerState, *, fallback: Any = None) -> None:
        self.state = state
        self.fallback = fallback
        self.group_commit = GroupCommit(state.store, state.metrics)
        self._stop_event: asyncio.Event | None = None
        self._stopping = False

    def stopping(self) -> None:
        """The server is stopping: cut injected latency waits short (call on the loop)."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` unless the server stops first."""
        if self._stopping:
            return
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    def append_now(
        self,
        conn: HttpConnection,
        slot: _Slot,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        *,
        close: bool,
    ) -> bool:
        """Queue a plain append from :mod:`._http` and answer it on commit,
        without a task; False: the request needs an :meth:`exchange`."""
        return start_direct_append(self, conn, slot, path, query, headers, body, close=close)

    async def drained(self) -> None:
        """Return once every queued append is committed and answered."""
        await self.group_commit.drained()

    def exchange(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        peer: str | None,
        responder: Responder,
        read_body: Callable[[], Awaitable[bytes | None]],
        *,
        after: asyncio.Future[None] | None = None,
    ) -> Exchange:
        """One request of the protocol or of operations (see :class:`Exchange`)."""
        return Exchange(self, method, path, query, headers, peer, responder, read_body, after=after)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"]
                await send({"type": kind + ".complete"})
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        if self.fallback is not None and not is_api_path(scope["path"]):
            await self.fallback(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            if key not in headers:
                headers[key] = value.decode("latin-1")
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        client = scope.get("client")
        responder = _AsgiResponder(send)
        await self.exchange(
            scope["method"],
            raw.decode("latin-1"),
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            None if not client else str(client[0]),
            responder,
            _AsgiBody(receive, headers, self.state.max_body_bytes).read,
        ).run()


class _AsgiResponder:
    def __init__(self, send: Any) -> None:
        self._send = send

    async def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool
    ) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    def drop(self) -> None:
        raise RuntimeError("an ASGI server cannot close a connection without a reply")

    def queued(self) -> None:
        pass

    def finished(self) -> None:
        pass

    def dropped(self) -> bool:
        return False


class _AsgiBody:
    """The request body from ASGI ``receive``, within the size limit."""

    def __init__(self, receive: Any, headers: dict[str, str], limit: int) -> None:
        self._receive = receive
        self._headers = headers
        self._limit = limit

    async def read(self) -> bytes | None:
        limit = self._limit
        if check_length(self._headers, limit) == 0:
            return b""
        parts: list[bytes] = []
        total = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise Reply(413, f"request body exceeds {limit} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)
