"""The web viewer (an ASGI app) on the server's own HTTP/1.1 connections.

Just what the viewer's pages, static files and server-sent events need: one
``http.request`` message with the whole body, then ``http.disconnect`` when
the client leaves or the reply is done; a reply without Content-Length is
sent chunked, so a stream flows as it is written. A HEAD reply has no body.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._wire import ERROR_TYPES, reply_head

if TYPE_CHECKING:
    from ._http import HttpConnection, _Slot

__all__ = ["run_asgi"]

logger = logging.getLogger("ingress_logging.server")


async def run_asgi(
    conn: HttpConnection,
    slot: _Slot,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    close: bool,
) -> None:
    """Run one request through ``conn.app.fallback``."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": conn.scheme,
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in headers],
        "client": conn.client,
        "server": conn.server,
        "extensions": {},
    }
    state = {"started": False, "chunked": False, "done": False, "sent_body": False}
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[None] = loop.create_future()
    conn.lost_waiters.append(lost)
    if conn.lost:
        lost.set_result(None)
    status_headers: list[Any] = []

    async def receive() -> dict[str, Any]:
        if not state["sent_body"]:
            state["sent_body"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        if not state["done"] and not lost.done():
            await asyncio.shield(lost)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if state["done"] or conn.lost:
            if conn.lost:
                raise OSError("the client is gone")
            return
        if kind == "http.response.start":
            status_headers[:] = [message["status"], list(message.get("headers", []))]
            return
        if kind != "http.response.body" or not status_headers:
            return
        data: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if not state["started"]:
            state["started"] = True
            status, raw = status_headers
            names = {bytes(name).lower() for name, _ in raw}
            out = [(bytes(n), bytes(v)) for n, v in raw]
            if b"content-length" not in names and status >= 200 and status not in (204, 304):
                if more:
                    state["chunked"] = True
                    out.append((b"transfer-encoding", b"chunked"))
                else:
                    out.append((b"content-length", str(len(data)).encode()))
            if close:
                out.append((b"connection", b"close"))
            conn.write(slot, reply_head(status, out), complete=False, close=close)
        if method == "HEAD":
            data = b""
        if state["chunked"]:
            if data:
                conn.write(slot, b"%x\r\n%s\r\n" % (len(data), data), complete=False)
            if not more:
                conn.write(slot, b"0\r\n\r\n", complete=True)
        else:
            conn.write(slot, data, complete=not more)
        if not more:
            state["done"] = True
            if not lost.done():
                lost.set_result(None)

    try:
        await conn.app.fallback(scope, receive, send)
    except OSError:  # the client is gone
        pass
    except Exception:
        logger.exception("ingress server: the web viewer failed")
    finally:
        if not lost.done():
            lost.set_result(None)
        if lost in conn.lost_waiters:
            conn.lost_waiters.remove(lost)
        if not state["started"]:
            _internal_error(conn, slot)
        elif not state["done"]:
            conn.drop(slot)  # a reply cut short: the client must not take it as whole
        conn.finish(slot)


def _internal_error(conn: HttpConnection, slot: _Slot) -> None:
    error = b'{"error":{"message":"internal server error","type":"%s"}}' % (
        ERROR_TYPES.get(500, "api_error").encode()
    )
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(error)).encode()),
        (b"connection", b"close"),
    ]
    conn.write(slot, reply_head(500, head) + error, complete=True, close=True)
