"""The delaying TCP proxy: a real round trip on loopback that keeps pipelining.

Timing assertions are lower bounds (a delay can only be longer on a loaded
machine) or orderings between events on one monotonic clock (the server
records ``time.monotonic()`` per request in the same process).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest

from ingress_logging.server import IngressServer
from ingress_logging.testing_proxy import DelayProxy, parse_duration

ProxyFactory = Callable[..., DelayProxy]


def _put(srv: IngressServer, sid: str, uuid: str, last: str | None) -> bytes:
    body = json.dumps({"type": "user", "uuid": uuid}).encode()
    head = [
        f"PUT /v1/session_ingress/session/{sid} HTTP/1.1",
        "Host: x",
        f"Authorization: Bearer {srv.token}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if last is not None:
        head.append(f"Last-Uuid: {last}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _connect(proxy: DelayProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _Replies:
    """Reads HTTP/1.1 replies (Content-Length framed) off a socket, noting arrival times."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self.first_byte_at: list[float] = []

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        if data and not self._buf:
            self.first_byte_at.append(time.monotonic())
        self._buf += data
        return bool(data)

    def next_status(self) -> int | None:
        """Status of the next reply; None when the connection ended first."""
        while b"\r\n\r\n" not in self._buf:
            if not self._fill():
                return None
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(rest) < length:
            self._buf = head + b"\r\n\r\n" + rest
            if not self._fill():
                return None
            head, _, rest = self._buf.partition(b"\r\n\r\n")
        self._buf = rest[length:]
        return int(lines[0].split()[1])


def _warm(sock: socket.socket, srv: IngressServer, replies: _Replies) -> None:
    """One request first, so the connection's handshake round trip is paid."""
    sock.sendall(_put(srv, "warm", "w0", None))
    assert replies.next_status() == 201


def test_a_round_trip_takes_at_least_the_rtt(
    ingress_server: IngressServer, delay_proxy_factory: ProxyFactory
) -> None:
    rtt = 0.2
    proxy = delay_proxy_factory(ingress_server, rtt=rtt)
    connect_started = time.monotonic()
    with _connect(proxy) as sock:
        replies = _Replies(sock)
        _warm(sock, ingress_server, replies)
        # A new connection pays the TCP handshake's round trip, then the request's.
        assert replies.first_byte_at[0] - connect_started >= 2 * rtt
        sent = time.monotonic()
        sock.sendall(_put(ingress_server, "s", "u1", None))
        assert replies.next_status() == 201
        assert replies.first_byte_at[1] - sent >= rtt
    assert [e["uuid"] for e in ingress_server.entries("s")] == ["u1"]


def test_pipelined_requests_are_not_serialised(
    ingress_server: IngressServer, delay_proxy_factory: ProxyFactory
) -> None:
    rtt = 0.5
    proxy = delay_proxy_factory(ingress_server, rtt=rtt)
    with _connect(proxy) as sock:
        replies = _Replies(sock)
        _warm(sock, ingress_server, replies)
        ingress_server.clear_requests()
        sent = time.monotonic()
        sock.sendall(_put(ingress_server, "p", "a", None) + _put(ingress_server, "p", "b", "a"))
        assert replies.next_status() == 201
        first_reply_at = replies.first_byte_at[-1]
        assert replies.next_status() == 200
    a, b = ingress_server.requests
    assert (a.entry_uuid, b.entry_uuid) == ("a", "b")
    # The server had the second request before the client had the first reply:
    # impossible on a path that holds a request until the one before is answered.
    assert b.t < first_reply_at
    assert a.t - sent >= rtt / 2
    assert first_reply_at - sent >= rtt
    assert [e["uuid"] for e in ingress_server.entries("p")] == ["a", "b"]


def test_a_dropped_connection_reaches_the_client_after_the_delay(
    ingress_server: IngressServer, delay_proxy_factory: ProxyFactory
) -> None:
    rtt = 0.2
    proxy = delay_proxy_factory(ingress_server, rtt=rtt)
    with _connect(proxy) as sock:
        replies = _Replies(sock)
        _warm(sock, ingress_server, replies)
        ingress_server.faults.drop_after_commit_next()
        sent = time.monotonic()
        sock.sendall(_put(ingress_server, "d", "x", None) + _put(ingress_server, "d", "y", "x"))
        assert replies.next_status() is None
        assert time.monotonic() - sent >= rtt
    # Stored, then the connection closed: the pipelined request behind it is lost.
    assert [e["uuid"] for e in ingress_server.entries("d")] == ["x"]


def test_httpx_works_through_it_and_close_ends_it(
    ingress_server: IngressServer, delay_proxy_factory: ProxyFactory
) -> None:
    proxy = delay_proxy_factory(ingress_server.base_url, rtt=0.01)
    url = f"{proxy.base_url}/v1/session_ingress/session/h"
    auth = {"Authorization": f"Bearer {ingress_server.token}"}
    with httpx.Client(timeout=10) as client:
        put = client.put(url, json={"type": "user", "uuid": "h1"}, headers=auth)
        assert put.status_code == 201
        assert client.get(url, headers=auth).json()["loglines"][0]["uuid"] == "h1"
    assert proxy.connections == 1
    proxy.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
        pass


def test_a_refused_target_closes_the_client_connection(
    delay_proxy_factory: ProxyFactory,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    proxy = delay_proxy_factory(f"http://127.0.0.1:{dead}", rtt=0.01)
    with _connect(proxy) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _Replies(sock).next_status() is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("50ms", 0.05), ("0.05", 0.05), ("1s", 1.0), (" 20 ms ", 0.02)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-5ms", "nan", "inf"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="rtt"):
        DelayProxy("http://127.0.0.1:1", rtt=-1)
    with pytest.raises(ValueError, match="URL"):
        DelayProxy("127.0.0.1:1", rtt=0.05)
