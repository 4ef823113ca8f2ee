"""An ``httpx`` transport over ``http.client``: the httpx API at http.client's cost.

Measured on loopback (``benchmarks/bench_delivery.py``, alternatives): a PUT
through ``httpx.Client`` with its default transport (httpcore's pool) costs
~650 us of client CPU; the same ``httpx.Client`` over this transport ~480 us;
bare ``http.client`` ~150-250 us. The engine keeps httpx as its API (requests,
responses, exceptions, event hooks, auth all stay httpx's) and swaps only the
connection layer.

Why it can be this simple: each delivery worker performs one request at a
time, so each (thread, origin) needs exactly one keep-alive connection. The
"pool" is a thread-local dict - no locks, no pool bookkeeping.

* Before reusing an idle connection it is checked for readability (the
  server closed it, or sent something unasked): such a connection is
  discarded, as httpcore does. There is no hidden retry: a failure is an
  ``httpx.TransportError`` and the protocol core decides (the uuid chain makes
  a resend harmless).
* Headers are sent exactly as httpx built them; responses are streamed, so
  the client's body cap still stops reading early (that connection is then
  closed, never reused). Content decoding is httpx's.
* A request's whole exchange - send, status line, ``100 Continue``s,
  headers, body - ends by one deadline: the ``deadline`` request extension
  (monotonic seconds, set by the client), else now + the read timeout.
* TLS: ``ssl.create_default_context()`` (verification on; ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR`` honoured by OpenSSL). Proxies are not supported here: when
  a proxy environment variable is set, ``build_http_client`` returns a plain
  ``httpx.Client`` (which honours it) instead.
"""

from __future__ import annotations

import http.client
import io
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import httpx

__all__ = ["HTTPClientTransport", "build_http_client"]

_PROXY_VARS: Final = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
_CHUNK: Final = 65536


def build_http_client(max_connections: int) -> httpx.Client:
    """The engine's ``httpx.Client``: over ``HTTPClientTransport`` unless proxies are set."""
    if any(os.environ.get(name) for name in _PROXY_VARS):
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        return httpx.Client(follow_redirects=False, limits=limits)
    return httpx.Client(follow_redirects=False, transport=HTTPClientTransport())


class _OneSend:
    """Send the request head and a bytes body in one ``send``: one syscall and,
    with TCP_NODELAY, one packet for a small entry instead of two."""

    _buffer: list[bytes]

    if TYPE_CHECKING:  # provided by HTTPConnection; a real method here would shadow it

        def send(self, data: Any) -> None: ...

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if isinstance(message_body, bytes) and not encode_chunked:
            self._buffer.extend((b"", b""))
            head = b"\r\n".join(self._buffer)
            del self._buffer[:]
            self.send(head + message_body)
            return
        super()._send_output(message_body, encode_chunked)  # type: ignore[misc]


class _HTTPConnection(_OneSend, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_OneSend, http.client.HTTPSConnection):
    pass


class _DeadlineSocket:
    """A socket whose every send and receive ends by ``deadline`` (monotonic).

    http.client sets one timeout per socket operation, so a server that
    trickles a body, repeats ``100 Continue`` or sends a header line now and
    then could hold a request for ever; here each operation gets only the
    time left of the request's total deadline (``timeout``).
    """

    __slots__ = ("_sock", "_timeout", "deadline")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout: float | None = sock.gettimeout()
        self.deadline: float | None = None

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def _arm(self) -> None:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request deadline passed")
            # Only when the time left is below the operation timeout already
            # set: a settimeout costs two fcntl calls, not worth it per read.
            if self._timeout is None or left < self._timeout:
                self.settimeout(left)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(bufsize, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        self._sock.sendall(data, flags)

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        return io.BufferedReader(raw, buffering or io.DEFAULT_BUFFER_SIZE)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _seconds(timeout: dict[str, Any], key: str) -> float | None:
    value = timeout.get(key)
    return float(value) if isinstance(value, int | float) else None


class _Stream(httpx.SyncByteStream):
    def __init__(
        self,
        response: http.client.HTTPResponse,
        conn: http.client.HTTPConnection,
        owner: HTTPClientTransport,
        request: httpx.Request,
    ) -> None:
        self._response = response
        self._conn = conn
        self._owner = owner
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            while chunk := self._response.read(_CHUNK):
                yield chunk
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=self._request) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ReadError(type(exc).__name__, request=self._request) from exc

    def close(self) -> None:
        reusable = self._response.isclosed() and not self._response.will_close
        self._response.close()
        self._owner._release(self._conn, reusable=reusable)


class HTTPClientTransport(httpx.BaseTransport):
    """One keep-alive ``http.client`` connection per (thread, origin)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self._closed = False

    def _idle(self) -> dict[tuple[str, str, int], http.client.HTTPConnection]:
        idle: dict[tuple[str, str, int], http.client.HTTPConnection] | None
        idle = getattr(self._local, "idle", None)
        if idle is None:
            idle = self._local.idle = {}
        return idle

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _connect(
        self, request: httpx.Request, timeout: dict[str, Any]
    ) -> http.client.HTTPConnection:
        url = request.url
        scheme, host = url.scheme, url.host
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        idle = self._idle()
        conn = idle.pop(key, None)
        if conn is not None:
            sock = conn.sock
            readable = sock is None
            if sock is not None:
                try:
                    readable = bool(select.select([sock], [], [], 0)[0])
                except (OSError, ValueError):
                    readable = True
            if not readable:
                return conn
            self._discard(conn)
        connect = _seconds(timeout, "connect")
        if scheme == "https":
            conn = _HTTPSConnection(host, port, timeout=connect, context=self._context())
        else:
            conn = _HTTPConnection(host, port, timeout=connect)
        with self._lock:
            self._open.add(conn)
        try:
            conn.connect()
        except TimeoutError as exc:
            self._discard(conn)
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except OSError as exc:
            self._discard(conn)
            raise httpx.ConnectError(type(exc).__name__, request=request) from exc
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = _DeadlineSocket(conn.sock)
        return conn

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("transport is closed")
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        deadline = request.extensions.get("deadline")
        if deadline is None:
            total = _seconds(timeout, "read")
            deadline = None if total is None else time.monotonic() + total
        conn = self._connect(request, timeout)
        sock = conn.sock
        assert isinstance(sock, _DeadlineSocket)
        sock.settimeout(_seconds(timeout, "read"))
        sock.deadline = deadline
        try:
            conn.putrequest(
                request.method,
                request.url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                conn.putheader(name, value)
            conn.endheaders(request.read() or None)
            response = conn.getresponse()
        except TimeoutError as exc:
            self._discard(conn)
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except http.client.RemoteDisconnected as exc:
            self._discard(conn)
            raise httpx.RemoteProtocolError("server disconnected", request=request) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._discard(conn)
            raise httpx.ReadError(type(exc).__name__, request=request) from exc
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=_Stream(response, conn, self, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode()},
        )

    def _release(self, conn: http.client.HTTPConnection, *, reusable: bool) -> None:
        if not reusable or self._closed:
            self._discard(conn)
            return
        url_key = (
            "https" if isinstance(conn, http.client.HTTPSConnection) else "http",
            conn.host,
            conn.port,
        )
        idle = self._idle()
        old = idle.get(url_key)
        if old is not None and old is not conn:
            self._discard(old)
        idle[url_key] = conn

    def _discard(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()
