"""Group commit: appends ready in the same loop turn share one store transaction,
each with its own compare-and-set result and its own reply (on both stores)."""

from __future__ import annotations

import json
import re
import socket

import httpx

from ingress_logging.server import IngressServer


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


def _replies(sock: socket.socket, n: int) -> list[tuple[int, str | None]]:
    """(status, x-last-uuid) of the next ``n`` replies."""
    replies = sock.makefile("rb")
    out = []
    for _ in range(n):
        status = int(replies.readline().split()[1])
        length, head = 0, None
        while (line := replies.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            if name.strip().lower() == b"x-last-uuid":
                head = value.strip().decode()
        replies.read(length)
        out.append((status, head))
    return out


def _metric(srv: IngressServer, name: str) -> int:
    text = httpx.get(srv.base_url + "/metrics").text
    found = re.search(rf"^{name} (\d+)$", text, re.M)
    assert found is not None, text
    return int(found.group(1))


def test_pipelined_appends_share_one_transaction_each_with_its_own_result(
    ingress_server: IngressServer,
) -> None:
    srv = ingress_server
    requests = [
        ("g", "a", None),  # 201: the session's first entry
        ("g", "b", "a"),  # 200: chained on the entry before it in the same batch
        ("g", "x", "stale"),  # 409 naming the head: the others are not failed with it
        ("g", "c", "b"),  # 200
        ("g", "c", "c"),  # 409: the uuid is stored (by this batch)
        ("h", "z", None),  # 201: another session in the same transaction
    ]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"".join(_put(srv, *r) for r in requests))  # all in one loop turn
        got = _replies(sock, len(requests))
    assert got == [(201, None), (200, None), (409, "b"), (200, None), (409, "c"), (201, None)]
    assert [e["uuid"] for e in srv.entries("g")] == ["a", "b", "c"]
    assert [e["uuid"] for e in srv.entries("h")] == ["z"]
    assert _metric(srv, "ingress_append_batches_total") == 1
    assert _metric(srv, "ingress_append_batched_total") == len(requests)
