"""``ReorderProxy``: the test tool for a path that does not keep order, checked on raw sockets."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable

from ingress_logging.server import IngressServer
from ingress_logging.testing_reorder import ReorderProxy


def _put(sid: str, uuid: str, token: str, last: str | None = None) -> bytes:
    body = json.dumps({"type": "user", "uuid": uuid}).encode()
    head = [
        f"PUT /v1/session_ingress/session/{sid} HTTP/1.1",
        "Host: proxy",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if last is not None:
        head.append(f"Last-Uuid: {last}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _statuses(sock: socket.socket) -> list[int]:
    """Status codes of every reply until the proxy closes the connection."""
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_requests_written_back_to_back_reach_the_server_reversed_replies_come_in_order(
    ingress_server: IngressServer, reorder_proxy_factory: Callable[..., ReorderProxy]
) -> None:
    proxy = reorder_proxy_factory(ingress_server)
    token = ingress_server.token
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(_put("s", "a", token) + _put("s", "b", token, last="a"))
        sock.shutdown(socket.SHUT_WR)
        # b reached the server first (409: no head yet), then a (201); the
        # replies come in the order written: a's, then b's.
        assert _statuses(sock) == [201, 409]
    puts = [(r.entry_uuid, r.status) for r in ingress_server.requests]
    assert puts == [("b", 409), ("a", 201)]
    assert proxy.batches == [2]


def test_a_request_written_alone_goes_through_unchanged(
    ingress_server: IngressServer, reorder_proxy_factory: Callable[..., ReorderProxy]
) -> None:
    proxy = reorder_proxy_factory(ingress_server)
    token = ingress_server.token
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(_put("s", "a", token))
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")
        sock.sendall(_put("s", "b", token, last="a"))
        sock.shutdown(socket.SHUT_WR)
        assert _statuses(sock) == [200]
    assert [e["uuid"] for e in ingress_server.entries("s")] == ["a", "b"]
    assert proxy.batches == [1, 1]


def test_a_connection_the_server_drops_ends_the_batch_and_the_clients_connection(
    ingress_server: IngressServer, reorder_proxy_factory: Callable[..., ReorderProxy]
) -> None:
    proxy = reorder_proxy_factory(ingress_server)
    token = ingress_server.token
    ingress_server.faults.drop_after_commit_next(1, session_id="t")
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        # Handled in reverse: u's append ("s", answered), then t's, whose reply
        # the server drops. The client gets no reply for t - written first - so
        # none at all, and its connection closes.
        sock.sendall(_put("t", "x", token) + _put("s", "u", token))
        assert _statuses(sock) == []
    assert [(r.entry_uuid, r.status) for r in ingress_server.requests] == [("u", 201), ("x", None)]
    assert [e["uuid"] for e in ingress_server.entries("t")] == ["x"]
