"""HTTP/1.1 plumbing for the local server: the threaded listener and body reading.

Kept apart from the routes in ``_app`` so that they read as protocol rules.
The listener tracks its open connections so that ``close()`` can shut down
idle keep-alive sockets; otherwise a pooled client connection would keep a
handler thread (and the port) alive after the server was told to stop.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, Protocol

__all__ = ["ERROR_TYPES", "BodyError", "Listener", "Reply", "read_body"]


#: The ``type`` of a JSON error body, by status (anything else: ``api_error``).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "method_not_allowed",
    409: "conflict_error",
    411: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class Reply(Exception):
    """Raised by a route to answer with a JSON error ``{"error": {message, type}}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class _Reader(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...
    def readline(self, limit: int = ..., /) -> bytes: ...


#: An oversize body up to this many bytes is read and discarded before the 413
#: is sent, so the client reliably sees the 413 (closing a socket with unread
#: data makes the kernel send a reset that can destroy the reply).
DRAIN_LIMIT = 64 * 1024 * 1024
_CHUNK = 64 * 1024


class BodyError(Exception):
    """The request body could not be read; ``status`` is the reply to send.

    ``keep_alive`` is False when the rest of the stream can no longer be
    trusted to start with the next request, so the connection must close.
    """

    def __init__(self, status: int, message: str, *, keep_alive: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.keep_alive = keep_alive


def _drain(rfile: _Reader, n: int) -> bool:
    while n > 0:
        got = rfile.read(min(n, _CHUNK))
        if not got:
            return False
        n -= len(got)
    return True


def _read_chunked(rfile: _Reader, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BodyError(400, "malformed chunked body") from None
        if size < 0:
            raise BodyError(400, "malformed chunked body")
        if size == 0:
            break
        total += size
        if total > limit:
            raise BodyError(413, f"request body exceeds {limit} bytes")
        data = rfile.read(size)
        if len(data) < size or rfile.read(2) != b"\r\n":
            raise BodyError(400, "truncated chunked body")
        parts.append(data)
    while True:  # trailers, up to the blank line
        line = rfile.readline(8192)
        if line in (b"\r\n", b"\n", b""):
            break
    return b"".join(parts)


def read_body(headers: Any, rfile: _Reader, limit: int) -> bytes:
    """Read the request body (Content-Length or chunked), at most ``limit`` bytes.

    Raises BodyError for a malformed framing (400), an oversize body (413)
    or a connection that ended mid-body (status 0: nobody to answer).
    """
    encoding = headers.get("Transfer-Encoding")
    if encoding is not None:
        if encoding.strip().lower() != "chunked":
            raise BodyError(400, "only chunked transfer encoding is supported")
        return _read_chunked(rfile, limit)
    lengths = set(headers.get_all("Content-Length") or [])
    if not lengths:
        return b""
    if len(lengths) > 1:
        raise BodyError(400, "conflicting Content-Length headers")
    raw = lengths.pop().strip()
    if not (raw.isascii() and raw.isdigit()):  # "\xb2".isdigit() is True; int() refuses it
        raise BodyError(400, "Content-Length must be a non-negative integer")
    length = int(raw)
    if length > limit:
        if length <= DRAIN_LIMIT and _drain(rfile, length):
            raise BodyError(413, f"request body exceeds {limit} bytes", keep_alive=True)
        raise BodyError(413, f"request body exceeds {limit} bytes")
    data = rfile.read(length)
    if len(data) < length:
        raise BodyError(0, "connection closed mid-body")
    return data


class Listener(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server that can close its keep-alive connections.

    One daemon thread per connection (so a forgotten server never blocks
    interpreter exit). The stdlib does not join daemon handler threads, so
    this class tracks them itself: :meth:`server_close` first shuts down
    every open connection (waking threads blocked on a read), then joins them.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    #: Upper bound on waiting for handler threads in server_close.
    join_timeout = 10.0

    def __init__(self, address: tuple[str, int], handler: Any, state: Any) -> None:
        self.state = state
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._conn_lock = threading.Lock()
        if ":" in address[0]:  # an IPv6 literal such as "::1"
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"ingress-logging-server:{self.server_address[1]}:conn",
            daemon=True,
        )
        with self._conn_lock:
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that reset or timed out is routine: no traceback on stderr."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def track(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.discard(conn)

    def connection_count(self) -> int:
        with self._conn_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        """Shut down every open connection, waking their handler threads."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        """Close the listening socket and every connection; join handler threads."""
        super().server_close()
        self.close_connections()
        deadline = time.monotonic() + self.join_timeout
        with self._conn_lock:
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))
