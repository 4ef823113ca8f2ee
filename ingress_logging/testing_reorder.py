"""A path that does not keep order: an HTTP/1.1 proxy that reverses pipelined requests.

``ReorderProxy(target_url)`` listens on an ephemeral loopback port. For each
client connection it reads the requests the client wrote back to back (a
*batch*: the complete requests that arrived before the connection went quiet
for ``gather`` seconds), hands them to ``target_url`` in reverse order, one at
a time on its own connection, and writes the replies back to the client in
the client's order - as a proxy does that spreads one connection's requests
over several upstream ones, or accepts pipelined requests without supporting
them. A request written alone goes through unchanged, so anything sent one
at a time behaves as without the proxy.

If the target closes a connection without replying (the local server's
``drop_after_commit`` fault), the proxy stops the batch there, writes the
replies it has in the client's order up to the first one missing, and closes
the client's connection: the client sees the rest of its requests lost.

Requests need a ``Content-Length`` (or no body); replies may be
``Content-Length``, chunked, or delimited by the close. ``batches`` lists the
size of every batch handed on, for tests to check that reordering happened.
Threads, blocking sockets; for tests only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

__all__ = ["ReorderProxy"]

_CHUNK: Final = 65536
_MAX_HEAD: Final = 65536


class _Closed(Exception):
    """The peer closed the connection (or sent something unusable)."""


class _Stream:
    """A socket with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False  # the peer finished writing

    def fill(self, timeout: float | None) -> bool:
        """Read once; False when nothing came within ``timeout``. Raises _Closed at EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(_CHUNK)
        except TimeoutError:
            return False
        except OSError as exc:
            raise _Closed from exc
        if not data:
            self.eof = True
            raise _Closed
        self.buf += data
        return True

    def take(self, n: int) -> bytes:
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def head(self) -> bytes | None:
        """A complete message head in the buffer (taken), or None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                raise _Closed
            return None
        return self.take(end + 4)


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.partition(":") for line in lines if line)
    return {name.strip().lower(): value.strip() for name, _, value in pairs}


def _request(stream: _Stream) -> bytes | None:
    """One complete request from the buffer (taken), or None if not all of it is in."""
    end = stream.buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = int(_headers(stream.buf[: end + 4]).get("content-length", "0"))
    if len(stream.buf) < end + 4 + length:
        return None
    return stream.take(end + 4 + length)


def _reply(stream: _Stream) -> tuple[bytes, bool]:
    """One reply from the target: (its bytes, whether the connection ends after it)."""
    head = stream.head()
    while head is None:
        stream.fill(None)
        head = stream.head()
    status = int(head.split(None, 2)[1])
    headers = _headers(head)
    closes = headers.get("connection", "").lower() == "close"
    if status in (204, 304) or 100 <= status < 200:
        return head, closes
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(stream.buf) < length:
            stream.fill(None)
        return head + stream.take(length), closes
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            while b"\r\n" not in stream.buf:
                stream.fill(None)
            line = stream.take(stream.buf.index(b"\r\n") + 2)
            size = int(line.split(b";")[0].strip(), 16)
            while len(stream.buf) < size + 2:
                stream.fill(None)
            body += line + stream.take(size + 2)
            if size == 0:
                return head + body, closes
    with contextlib.suppress(_Closed):
        while True:
            stream.fill(None)
    return head + stream.take(len(stream.buf)), True


class ReorderProxy:
    """A request-reversing HTTP/1.1 proxy in front of ``target`` (``http://host:port``)."""

    def __init__(self, target: str, *, gather: float = 0.02) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError("target must be an http://host:port URL")
        self._target = (parts.hostname, parts.port or 80)
        self.gather = gather
        #: Sizes of the batches handed on, in order (1: a request written alone).
        self.batches: list[int] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()
        self.port = 0

    def __repr__(self) -> str:
        return f"ReorderProxy(127.0.0.1:{self.port} -> {self._target[0]}:{self._target[1]})"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if self._listener is not None:
            return self
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept, listener)
        return self

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        listener.close()
        with self._lock:
            socks, self._socks = set(self._socks), set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- threads -----------------------------------------------------------------

    def _spawn(self, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        thread = threading.Thread(target=target, args=(sock,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._listener is None:
                sock.close()
                return False
            self._socks.add(sock)
            return True

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._track(client):
                self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        stream = _Stream(client)
        upstream: _Stream | None = None
        try:
            while True:
                batch = self._batch(stream)
                with self._lock:
                    self.batches.append(len(batch))
                replies: dict[int, bytes] = {}
                for index in reversed(range(len(batch))):
                    if upstream is None:
                        upstream = self._connect()
                    try:
                        upstream.sock.sendall(batch[index])
                        replies[index], closes = _reply(upstream)
                    except (_Closed, OSError):
                        upstream.sock.close()
                        upstream = None
                        break
                    if closes:
                        upstream.sock.close()
                        upstream = None
                answered = 0
                while answered in replies:
                    answered += 1
                client.sendall(b"".join(replies[i] for i in range(answered)))
                if answered < len(batch) or stream.eof:
                    return
        except (_Closed, OSError):
            return
        finally:
            if upstream is not None:
                upstream.sock.close()
            client.close()

    def _batch(self, stream: _Stream) -> list[bytes]:
        """The requests written back to back: read until quiet for ``gather`` seconds."""
        batch: list[bytes] = []
        while True:
            request = _request(stream)
            if request is not None:
                batch.append(request)
                continue
            try:
                if not stream.fill(self.gather if batch else None):
                    return batch
            except _Closed:
                if batch and stream.eof:  # written, then the writing side closed
                    return batch
                raise

    def _connect(self) -> _Stream:
        sock = socket.create_connection(self._target, timeout=10)
        if not self._track(sock):
            raise _Closed
        return _Stream(sock)
