"""The reply outbox: a loop turn's replies leave together at its end, in order."""

from __future__ import annotations

import asyncio
import socket

from ingress_logging.server import IngressServer
from ingress_logging.server._runner import Outbox, _new_loop


def _pairs(n: int) -> list[tuple[socket.socket, socket.socket]]:
    pairs = []
    for _ in range(n):
        ours, peer = socket.socketpair()
        peer.settimeout(5)
        pairs.append((ours, peer))
    return pairs


def _nothing_arrived(peer: socket.socket) -> bool:
    peer.setblocking(False)
    try:
        peer.recv(100)
    except BlockingIOError:
        return True
    finally:
        peer.settimeout(5)
    return False


def _recv_exactly(peer: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = peer.recv(size - len(data))
        assert chunk, "the connection closed early"
        data += chunk
    return data


async def _transport(sock: socket.socket) -> asyncio.Transport:
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=sock)
    return transport  # type: ignore[return-value]


def test_writes_wait_for_the_end_of_the_turn_then_leave_in_order() -> None:
    pairs = _pairs(2)
    loop = _new_loop()

    async def scenario() -> None:
        outbox = Outbox(asyncio.get_running_loop())
        transports = [await _transport(ours) for ours, _peer in pairs]
        try:
            await check(outbox, transports)
        finally:
            for transport in transports:
                transport.close()
            await asyncio.sleep(0)

    async def check(outbox: Outbox, transports: list[asyncio.Transport]) -> None:
        outbox.write(transports[0], b"first ")
        outbox.write(transports[1], b"other")
        outbox.write(transports[0], b"second")
        assert _nothing_arrived(pairs[0][1])
        assert _nothing_arrived(pairs[1][1])
        await asyncio.sleep(0)  # the turn ends: the flush scheduled first runs
        assert _recv_exactly(pairs[0][1], 12) == b"first second"
        assert _recv_exactly(pairs[1][1], 5) == b"other"
        outbox.write(transports[0], b"third")
        outbox.flush()  # as a direct write or close does: out at once, not again later
        assert _recv_exactly(pairs[0][1], 5) == b"third"
        await asyncio.sleep(0)
        assert _nothing_arrived(pairs[0][1])

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
        for ours, peer in pairs:
            ours.close()
            peer.close()


def test_a_transport_closed_before_the_flush_gets_nothing_and_others_still_do() -> None:
    pairs = _pairs(2)
    loop = _new_loop()

    async def scenario() -> None:
        outbox = Outbox(asyncio.get_running_loop())
        transports = [await _transport(ours) for ours, _peer in pairs]
        try:
            await check(outbox, transports)
        finally:
            for transport in transports:
                transport.close()
            await asyncio.sleep(0)

    async def check(outbox: Outbox, transports: list[asyncio.Transport]) -> None:
        outbox.write(transports[0], b"lost")
        outbox.write(transports[1], b"kept")
        transports[0].close()  # the client went away meanwhile
        await asyncio.sleep(0)
        assert _recv_exactly(pairs[1][1], 4) == b"kept"
        assert pairs[0][1].recv(100) == b""  # a close, and not a byte before it

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
        for ours, peer in pairs:
            ours.close()
            peer.close()


def test_pipelined_replies_arrive_in_order_then_the_close(ingress_server: IngressServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", ingress_server.port), timeout=10) as sock:
        sock.sendall(request * 2 + last)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    heads = list(reply.split(b"HTTP/1.1 ")[1:])
    assert [h[:3] for h in heads] == [b"200", b"200", b"200"]
    assert b'{"status":"ok"}' in heads[0]
    assert b'{"status":"ok"}' in heads[1]
    assert b"ingress_requests_total" in heads[2]
    assert b"connection: close" in heads[2].lower()
