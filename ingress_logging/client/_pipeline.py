"""A pipelined HTTP/1.1 keep-alive connection: requests back to back, replies in order.

httpx (and http.client) send a request only after the previous reply was
read, so one session's appends cost one round trip each. The chain makes
more possible (``protocol.AppendWindow``): several appends of a session in
flight on one connection. This module is the byte mover for that, nothing
more: it writes request bytes and parses replies in the order they come.
Every decision stays in the protocol core.

* One connection per (thread, origin), kept alive between calls. A reused
  connection is checked for readability first (the server closed it, or sent
  something unasked) and replaced if so.
* TLS: ``ssl.create_default_context()`` (verification on; ``SSL_CERT_FILE``
  / ``SSL_CERT_DIR`` honoured by OpenSSL), as the engine's other transport.
* Every reply has a total deadline (the client's read timeout), not a per
  read one: a server that trickles bytes does not hold the caller longer.
* Any failure (refused, reset, closed, timed out, malformed) is
  ``ConnectionLost``; the connection is then closed and never reused, and
  every reply not yet read is lost - which the window treats as lost replies.

Headers (the token among them) are written to the socket only; nothing here
logs, and no ``repr`` shows them.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from typing import Final
from urllib.parse import urlsplit

__all__ = ["ConnectionLost", "PipelinedConnection", "Pipelines", "Reply", "encode_request"]

_MAX_LINE: Final = 65536
_MAX_HEADERS: Final = 100


class ConnectionLost(Exception):
    """The connection failed; replies not read yet are lost. The message names no secret."""


Reply = tuple[int, dict[str, str], bool]  # status, headers (lower-case names), will_close


def encode_request(method: str, url: str, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 request with a ``Content-Length`` body, as bytes for the socket."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    host = parts.netloc.rpartition("@")[2]
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class PipelinedConnection:
    """One keep-alive connection to ``scheme://host:port``."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        connect_timeout: float | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = (scheme, host, port)
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                context = ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=host)
        except OSError as exc:
            raise ConnectionLost(f"connect failed: {type(exc).__name__}") from exc
        self._sock = sock
        self._rfile = sock.makefile("rb")
        self.closed = False

    def __repr__(self) -> str:
        scheme, host, port = self.origin
        return f"PipelinedConnection({scheme}://{host}:{port}, closed={self.closed})"

    def stale(self) -> bool:
        """True when an idle connection cannot be reused (closed, or unasked bytes)."""
        if self.closed:
            return True
        try:
            return bool(select.select([self._sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def write(self, data: bytes, deadline: float | None) -> None:
        """Write request bytes (several requests at once is the point)."""
        try:
            self._sock.settimeout(_remaining(deadline))
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"write failed: {type(exc).__name__}") from exc

    def read_reply(self, deadline: float | None, cap: int) -> Reply:
        """The next reply, in request order; its body is read (at most ``cap``) and dropped."""
        try:
            return self._read_reply(deadline, cap)
        except (OSError, ValueError, ConnectionLost) as exc:
            self.close()
            if isinstance(exc, ConnectionLost):
                raise
            raise ConnectionLost(f"read failed: {type(exc).__name__}") from exc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self._rfile.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    # --- parsing -----------------------------------------------------------------

    def _line(self, deadline: float | None) -> bytes:
        self._sock.settimeout(_remaining(deadline))
        line = self._rfile.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise ConnectionLost("header line too long")
        return line

    def _read_reply(self, deadline: float | None, cap: int) -> Reply:
        while True:
            line = self._line(deadline)
            if not line:
                raise ConnectionLost("closed by the server")
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise ConnectionLost("malformed status line")
            status = int(parts[1])
            headers: dict[str, str] = {}
            while True:
                line = self._line(deadline)
                if line in (b"\r\n", b"\n"):
                    break
                if not line:
                    raise ConnectionLost("closed in the headers")
                if len(headers) >= _MAX_HEADERS:
                    raise ConnectionLost("too many headers")
                name, sep, value = line.partition(b":")
                if not sep:
                    raise ConnectionLost("malformed header")
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            if 100 <= status < 200:
                if deadline is not None and time.monotonic() > deadline:
                    raise ConnectionLost("timed out")
                continue  # interim replies (100 Continue) precede the real one
            will_close = headers.get("connection", "").lower() == "close"
            if not self._skip_body(status, headers, deadline, cap):
                will_close = True
            if will_close:
                self.close()
            return status, headers, will_close

    def _skip_body(
        self, status: int, headers: dict[str, str], deadline: float | None, cap: int
    ) -> bool:
        """Read the body past; False when the connection cannot carry another reply."""
        if status in (204, 304):
            return True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            total = 0
            while True:
                size_line = self._line(deadline).split(b";", 1)[0].strip()
                if not size_line:
                    raise ConnectionLost("malformed chunk")
                size = int(size_line, 16)
                if size == 0:
                    while self._line(deadline) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return True
                total += size
                if total > cap:
                    return False
                self._read_exactly(size + 2, deadline)
        length = headers.get("content-length")
        if length is None:
            return False  # delimited by the close: nothing can follow it
        if not length.isdigit():
            raise ConnectionLost("malformed Content-Length")
        if int(length) > cap:
            return False
        self._read_exactly(int(length), deadline)
        return True

    def _read_exactly(self, n: int, deadline: float | None) -> None:
        while n > 0:
            self._sock.settimeout(_remaining(deadline))
            # read1: at most one recv, so a body trickled a byte at a time meets
            # the deadline check here instead of blocking until it is complete.
            got = self._rfile.read1(min(n, 65536))
            if not got:
                raise ConnectionLost("closed in the body")
            n -= len(got)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


class Pipelines:
    """Keep-alive pipelined connections of one client: one per (thread, origin)."""

    def __init__(self, *, connect_timeout: float | None) -> None:
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[PipelinedConnection] = set()
        self._closed = False

    def _idle(self) -> dict[tuple[str, str, int], PipelinedConnection]:
        idle: dict[tuple[str, str, int], PipelinedConnection] | None
        idle = getattr(self._local, "idle", None)
        if idle is None:
            idle = self._local.idle = {}
        return idle

    @staticmethod
    def origin(url: str) -> tuple[str, str, int]:
        """``(scheme, host, port)`` of a URL."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        return scheme, host, parts.port or (443 if scheme == "https" else 80)

    def get(self, url: str) -> PipelinedConnection:
        """This thread's connection to ``url``'s origin (a new one if there is none)."""
        if self._closed:
            raise ConnectionLost("client closed")
        key = self.origin(url)
        idle = self._idle()
        conn = idle.get(key)
        if conn is not None and not conn.stale():
            return conn
        if conn is not None:
            self.discard(conn)
        conn = PipelinedConnection(*key, connect_timeout=self._connect_timeout)
        with self._lock:
            self._open.add(conn)
        idle[key] = conn
        return conn

    def discard(self, conn: PipelinedConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)
        idle = self._idle()
        if idle.get(conn.origin) is conn:
            del idle[conn.origin]

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()
