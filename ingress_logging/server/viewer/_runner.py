"""Serve an ASGI app (the viewer) with uvicorn on a background thread.

For tests, docs and the development server: binds 127.0.0.1 port 0 by
default, returns once the socket accepts connections, and stops cleanly
(open live streams are closed when their browsers go away, or cut after
``graceful`` seconds).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

__all__ = ["AppServer", "run_app"]


class _Server(uvicorn.Server):
    """uvicorn's server, telling a waiting thread when it is up."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self._ready.set()


class AppServer:
    """One ASGI app on one loopback socket, in a thread."""

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, graceful: int = 3
    ) -> None:
        self._sock = socket.create_server((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        ready = threading.Event()
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=graceful,
        )
        self._server = _Server(config, ready)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        ready.wait()
        if not self._server.started:
            self.stop()
            raise RuntimeError("the viewer's server did not start (see its log)")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join()
        self._sock.close()


@contextmanager
def run_app(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[AppServer]:
    """``with run_app(viewer_app(...)) as server: server.base_url``."""
    server = AppServer(app, host=host, port=port)
    try:
        yield server
    finally:
        server.stop()
