"""The HTTP stack alone: the server's runner and HTTP/1.1 connections (httptools
on uvloop) with an app that answers every append 201 where it was parsed,
storing nothing (other requests through a task, as the server's general way
does). bench_server.py measures it as the ceiling of the HTTP layer."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from ingress_logging.server._runner import Runner, bind_socket
from ingress_logging.server._wire import reply_head

BODY = b'{"stored":true,"head":"x"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
REPLY = reply_head(201, HEADERS) + BODY


class _Exchange:
    def __init__(self, responder: Any, read_body: Callable[[], Awaitable[bytes | None]]) -> None:
        self.responder = responder
        self.read_body = read_body

    async def run(self) -> None:
        await self.read_body()
        await self.responder.respond(201, HEADERS, BODY, close=False)
        self.responder.finished()


class TrivialApp:
    """What the connections need of an app, storing nothing."""

    fallback = None
    state = SimpleNamespace(max_body_bytes=10 * 1024 * 1024)

    def append_now(self, conn: Any, slot: Any, *args: Any, close: bool) -> bool:
        # answered at once, as the server answers a plain append: no task
        conn.write(slot, REPLY, complete=True, close=close)
        return True

    async def drained(self) -> None:
        pass

    def exchange(self, method: str, path: str, query: str, headers: Any, peer: Any,
                 responder: Any, read_body: Any, *, after: Any = None) -> _Exchange:  # fmt: skip
        return _Exchange(responder, read_body)


if __name__ == "__main__":
    sock = bind_socket("127.0.0.1", 0)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    Runner(TrivialApp(), sock).run()  # type: ignore[arg-type]
