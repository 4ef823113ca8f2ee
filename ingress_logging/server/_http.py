"""HTTP/1.1 for the server: httptools' parser feeding the app's exchanges directly.

One :class:`HttpConnection` per TCP connection. Requests of the protocol and
of operations become :class:`~._exchange.Exchange` objects without an ASGI
round of dictionaries and messages; other paths (the web viewer) go to the
app's ASGI ``fallback`` through a small bridge (:mod:`._asgi_bridge`).

Pipelined requests on a connection all start at once, so their appends join
one group commit (:mod:`._group_commit`); an append waits, if need be, for
the previous request on its connection to queue its own, so a client's
chained appends reach the store in the order they were written. A plain
append whose predecessor has queued is queued right where it is parsed,
without a task (:mod:`._direct_append`). Replies leave in request order
through the loop's :class:`~._runner.Outbox`.

Requests the parser refuses (bad framing, an unknown method) get the same
JSON error body as every other error, then the connection closes. The
lost-reply fault closes the connection with no reply bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from ._exchange import READ_HEADERS, SESSION_PREFIX, check_length, is_api_path
from ._wire import ERROR_TYPES, REASONS, Reply, reply_head

if TYPE_CHECKING:
    from ._asgi import IngressApp
    from ._runner import Outbox

__all__ = ["HttpConnection"]

#: Requests parsed ahead on one connection before it stops reading.
MAX_PIPELINED = 64
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS")}


class _Slot:
    """One request's place in its connection's reply order."""

    __slots__ = ("close", "complete", "drop", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.complete = False
        self.close = False
        self.drop = False


class HttpConnection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(
        self,
        app: IngressApp,
        outbox: Outbox,
        connections: set[HttpConnection],
        *,
        tls: bool = False,
    ) -> None:
        self.app = app
        self.outbox = outbox
        self.loop = asyncio.get_running_loop()
        self.connections = connections
        self.scheme = "https" if tls else "http"
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.slots: deque[_Slot] = deque()
        self.closing = False  # no further requests: close after the last reply
        self.lost = False
        self.dropped = False  # by the server, without a reply (the lost-reply fault)
        self.lost_waiters: list[asyncio.Future[None]] = []
        self.last_active = self.loop.time()
        self._last: _Responder | None = None  # of the newest request
        self._paused = False
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._refused: Reply | None = None
        self._skip = False

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        self.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (str(peer[0]), int(peer[1]))
            self.peer = self.client[0]
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple):
            self.server = (str(sock[0]), int(sock[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.lost = True
        for waiter in self.lost_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.lost_waiters.clear()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            self._refuse(501, "method not implemented")
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself; replies still owed are lost

    # --- httptools callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0
        self._refused = None
        self._skip = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self._headers:  # only the ones read; the first of repeated ones
            key = READ_HEADERS.get(name.lower())
            if key is not None and key not in headers:
                headers[key] = value.decode("latin-1")
        self._header_map = headers
        try:
            check_length(headers, self.app.state.max_body_bytes)
        except Reply as reply:
            self._refused = reply
            if reply.close:  # answer now, without waiting for (or reading) the body
                self._skip = True
                self._dispatch()
                self.closing = True
            return
        if "100-continue" in headers.get("expect", "").lower():
            self._write_now(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._skip or self._refused is not None:
            return
        self._size += len(body)
        limit = self.app.state.max_body_bytes
        if self._size > limit:
            self._refused = Reply(413, f"request body exceeds {limit} bytes")
            self._body = []
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._skip:
            return
        self._dispatch()

    # --- requests ---------------------------------------------------------------

    def _dispatch(self) -> None:
        if self.closing:  # after a request that ends the connection
            return
        self.last_active = self.loop.time()
        raw_method = self.parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        raw_path, _, query = self._url.partition(b"?")
        path = raw_path.decode("latin-1")
        slot = _Slot()
        self.slots.append(slot)
        if len(self.slots) >= MAX_PIPELINED and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        last = not self.parser.should_keep_alive()
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        refused = self._refused
        headers = self._header_map
        app = self.app
        if app.fallback is not None and refused is None and not is_api_path(path):
            from ._asgi_bridge import run_asgi

            coro = run_asgi(self, slot, method, raw_path, query, self._headers, body, close=last)
        elif (
            method == "PUT"
            and refused is None
            and path.startswith(SESSION_PREFIX)
            and (self._last is None or self._last.passed)
            and app.append_now(self, slot, path, query.decode("latin-1"), headers, body, close=last)
        ):
            self._last = None  # queued already: the next request need not wait for it
            if last:
                self.closing = True
            return
        else:
            responder = _Responder(self, slot, head=method == "HEAD")
            after = None if self._last is None else self._last.waiter()
            self._last = responder

            async def read_body() -> bytes:
                if refused is not None:
                    raise refused
                return body

            exchange = app.exchange(
                method,
                path,
                query.decode("latin-1"),
                headers,
                self.peer,
                responder,
                read_body,
                after=after,
            )
            exchange.close = last
            coro = exchange.run()
        if last:
            self.closing = True  # nothing after this request is read
        self.loop.create_task(coro)  # the runner waits for every task when it stops

    def write(self, slot: _Slot, data: bytes, *, complete: bool, close: bool = False) -> None:
        """Reply bytes of ``slot`` (all of them when ``complete``)."""
        if data:
            slot.parts.append(data)
        slot.close = slot.close or close
        if complete:
            slot.complete = True
        self._drain()

    def drop(self, slot: _Slot) -> None:
        self.dropped = True
        slot.drop = True
        slot.complete = True
        self._drain()

    def finish(self, slot: _Slot) -> None:
        """The request ended; a slot left unanswered (client gone) is skipped."""
        if not slot.complete:
            slot.complete = True
            self._drain()

    def _drain(self) -> None:
        slots = self.slots
        transport = self.transport
        while slots:
            slot = slots[0]
            if slot.drop:
                self._close()
                return
            if slot.parts and transport is not None:
                for part in slot.parts:
                    self.outbox.write(transport, part)
                slot.parts.clear()
            if not slot.complete:
                return
            slots.popleft()
            if slot.close:
                self._close()
                return
        if self._paused and transport is not None and not self.closing:
            self._paused = False
            transport.resume_reading()
        if self.closing:
            self._close()

    def _write_now(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.outbox.write(self.transport, data)

    def _close(self) -> None:
        self.closing = True
        self.slots.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.outbox.flush()  # earlier replies leave before the close
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: close now if idle, else after the replies owed."""
        self.closing = True
        if not self.slots:
            self._close()

    def _refuse(self, status: int, message: str) -> None:
        body = json.dumps(
            {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error")}}
        ).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, b'Error').decode()}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.closing = True
        slot = _Slot()
        self.slots.append(slot)
        self.write(slot, head + body, complete=True, close=True)


class _Responder:
    """An exchange's :class:`~._exchange.Responder` on this connection."""

    __slots__ = ("_waiter", "conn", "head", "passed", "slot")

    def __init__(self, conn: HttpConnection, slot: _Slot, *, head: bool) -> None:
        self.conn = conn
        self.slot = slot
        self.head = head  # a HEAD request: the reply's headers only
        self.passed = False  # queued its append, or ended
        self._waiter: asyncio.Future[None] | None = None

    def waiter(self) -> asyncio.Future[None] | None:
        """What the next request on the connection awaits before it appends."""
        if self.passed:
            return None
        if self._waiter is None:
            self._waiter = self.conn.loop.create_future()
        return self._waiter

    async def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool
    ) -> None:
        data = reply_head(status, headers) + (b"" if self.head else body)
        self.conn.write(self.slot, data, complete=True, close=close)

    def drop(self) -> None:
        self.conn.drop(self.slot)

    def queued(self) -> None:
        if not self.passed:
            self.passed = True
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    def finished(self) -> None:
        self.queued()
        self.conn.finish(self.slot)

    def dropped(self) -> bool:
        return self.conn.dropped
