"""The HTTP stack alone: the server's runner (uvicorn's httptools protocol on
uvloop) with an ASGI app that reads the body and answers 201 without storing
anything. bench_server.py measures it as the ceiling of the HTTP layer."""

from __future__ import annotations

import sys
from typing import Any

from ingress_logging.server._runner import Runner, bind_socket

BODY = b'{"stored":true,"head":"x"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    sock = bind_socket("127.0.0.1", 0)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    Runner(app, sock).run()
