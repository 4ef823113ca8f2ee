"""HTTP/1.1 pipelining: requests written back to back on one connection are
each answered, in order (the pipelined client relies on it)."""

from __future__ import annotations

import json
import socket

from ingress_logging.server import IngressServer


def _put(srv: IngressServer, uuid: str, last: str | None) -> bytes:
    body = json.dumps({"type": "user", "uuid": uuid}).encode()
    head = [
        "PUT /v1/session_ingress/session/pipe HTTP/1.1",
        "Host: x",
        f"Authorization: Bearer {srv.token}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if last is not None:
        head.append(f"Last-Uuid: {last}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_pipelined_requests_are_all_answered_in_order(ingress_server: IngressServer) -> None:
    uuids = [f"u{i}" for i in range(8)]
    data = b"".join(_put(ingress_server, u, p) for u, p in zip(uuids, [None, *uuids], strict=False))
    with socket.create_connection(("127.0.0.1", ingress_server.port), timeout=10) as sock:
        sock.sendall(data)  # one write: the server parses them all before answering
        replies = sock.makefile("rb")
        statuses = []
        for _ in uuids:
            status = int(replies.readline().split()[1])
            length = 0
            while (line := replies.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            replies.read(length)
            statuses.append(status)
    assert statuses == [201] + [200] * 7
    assert [e["uuid"] for e in ingress_server.entries("pipe")] == uuids
