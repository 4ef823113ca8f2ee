"""HTTP/1.1 pipelining: requests written back to back on one connection are
each answered, in order (the pipelined client relies on it)."""

from __future__ import annotations

import json
import socket

from ingress_logging.server import IngressServer


def _put(srv: IngressServer, uuid: str, last: str | None, token: str | None = None) -> bytes:
    body = json.dumps({"type": "user", "uuid": uuid}).encode()
    head = [
        "PUT /v1/session_ingress/session/pipe HTTP/1.1",
        "Host: x",
        f"Authorization: Bearer {token or srv.token}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if last is not None:
        head.append(f"Last-Uuid: {last}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _statuses(srv: IngressServer, data: bytes, n: int) -> list[int]:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(data)  # one write: the server parses them all before answering
        replies = sock.makefile("rb")
        statuses = []
        for _ in range(n):
            status = int(replies.readline().split()[1])
            length = 0
            while (line := replies.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            replies.read(length)
            statuses.append(status)
    return statuses


def test_pipelined_requests_are_all_answered_in_order(ingress_server: IngressServer) -> None:
    uuids = [f"u{i}" for i in range(8)]
    data = b"".join(_put(ingress_server, u, p) for u, p in zip(uuids, [None, *uuids], strict=False))
    assert _statuses(ingress_server, data, len(uuids)) == [201] + [200] * 7
    assert [e["uuid"] for e in ingress_server.entries("pipe")] == uuids


def test_appends_that_need_a_lookup_keep_their_place_among_plain_ones(
    ingress_server: IngressServer,
) -> None:
    """A named token needs a store lookup before its append queues; the plain
    appends pipelined behind it (answered without a task) wait for it, so all
    reach the store in wire order and each is chained on the one before."""
    named = ingress_server.store.create_token("ci", "append")
    tokens = [None, named, None, named, named, None, None, named]
    uuids = [f"u{i}" for i in range(len(tokens))]
    data = b"".join(
        _put(ingress_server, u, p, t)
        for u, p, t in zip(uuids, [None, *uuids], tokens, strict=False)
    )
    assert _statuses(ingress_server, data, len(uuids)) == [201] + [200] * 7
    assert [e["uuid"] for e in ingress_server.entries("pipe")] == uuids


def test_a_plain_append_asking_to_close_is_the_last_one_answered(
    ingress_server: IngressServer,
) -> None:
    closing = _put(ingress_server, "u1", "u0").replace(b"Host: x\r\n", b"Connection: close\r\n")
    data = _put(ingress_server, "u0", None) + closing + _put(ingress_server, "u2", "u1")
    with socket.create_connection(("127.0.0.1", ingress_server.port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):  # until the server closes
            reply += chunk
    heads = reply.split(b"HTTP/1.1 ")[1:]
    assert [h[:3] for h in heads] == [b"201", b"200"]
    assert b"connection: close" in heads[1].lower()
    assert [e["uuid"] for e in ingress_server.entries("pipe")] == ["u0", "u1"]
