"""Serving the app on a socket we own: one event loop, :mod:`._http` connections.

Replies leave through an :class:`Outbox`: the replies finished in one turn
of the event loop are written together at its end, not one by one between
the requests' own work. Waking the client's side of a connection is most of
the cost of a write (on loopback, and far more in a virtual machine, where
it wakes an idle CPU), and a client woken by the first reply of a turn is
still awake for the others. A reply waits at most for the rest of its turn
(the other requests' work that was ready at the same time).

:class:`Runner` owns one event loop and one listening socket: in a
background thread (``run_server``, tests) or in the foreground (``serve``,
each worker process). Stopping is immediate: the listener closes, idle
keep-alive connections are closed, requests in flight finish (an injected
latency is cut short), then the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._http import HttpConnection

if TYPE_CHECKING:
    from ._asgi import IngressApp

__all__ = ["Outbox", "Runner", "bind_socket"]

logger = logging.getLogger("ingress_logging.server")
#: How long stop() lets requests in flight finish before cancelling them.
GRACE_SECONDS = 10.0


class Outbox:
    """The bytes written during one turn of the event loop, in order, written
    to their transports at the end of the turn (one owner per loop: the
    :class:`Runner`). Anything that writes to or closes a transport directly
    flushes it first, so bytes never overtake each other or a close."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[tuple[asyncio.Transport, bytes]] = []

    def write(self, transport: asyncio.Transport, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append((transport, data))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for transport, data in pending:
            if not transport.is_closing():  # the client went away meanwhile
                transport.write(data)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 for a literal such as ``::1``); OSError names nothing."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Runner:
    """One event loop serving ``app`` on ``sock`` with :class:`HttpConnection`.

    ``on_stopping`` runs on the loop when a stop begins (the app wakes its
    latency waits there). ``keep_alive``: an idle connection is closed after
    that many seconds. ``periodic`` is ``(seconds, fn)``: ``fn`` runs on a
    worker thread every ``seconds`` (retention).
    """

    def __init__(
        self,
        app: IngressApp,
        sock: socket.socket,
        *,
        on_stopping: Callable[[], None] | None = None,
        keep_alive: float = 3600.0,
        ssl_context: ssl.SSLContext | None = None,
        periodic: tuple[float, Callable[[], object]] | None = None,
    ) -> None:
        self.sock = sock
        self.app = app
        self._ssl = ssl_context
        self._keep_alive = keep_alive
        self._connections: set[HttpConnection] = set()
        self._on_stopping = on_stopping
        self._periodic = periodic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def connection_count(self) -> int:
        return len(self._connections)

    # --- foreground -----------------------------------------------------------

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Serve on this thread until :meth:`stop` (from any thread)."""
        loop = _new_loop()
        try:
            loop.run_until_complete(self._serve(loop, ready))
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def start_thread(self, name: str) -> None:
        """Serve in a daemon thread; returns once the socket accepts connections."""
        started = threading.Event()
        failure: list[BaseException] = []

        def target() -> None:
            try:
                self.run(started.set)
            except BaseException as exc:  # reported to the caller of start_thread
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            raise failure[0]

    def stop(self) -> None:
        """Stop serving (idempotent); joins the thread when there is one."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None

    async def _tick(self, seconds: float, fn: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, fn)
            except Exception:
                logger.exception("ingress server: a periodic task failed")
            await asyncio.sleep(seconds)

    async def _close_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(self._keep_alive, 60.0))
            horizon = loop.time() - self._keep_alive
            for connection in list(self._connections):
                if not connection.slots and connection.last_active < horizon:
                    connection.shutdown()

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: Callable[[], None] | None
    ) -> None:
        outbox = Outbox(loop)
        connections, app, tls = self._connections, self.app, self._ssl is not None

        def factory() -> asyncio.Protocol:
            return HttpConnection(app, outbox, connections, tls=tls)

        self._stop = asyncio.Event()
        self._loop = loop
        server = await loop.create_server(factory, sock=self.sock, ssl=self._ssl, backlog=512)
        helpers = [loop.create_task(self._close_idle())]
        if self._periodic is not None:
            helpers.append(loop.create_task(self._tick(*self._periodic)))
        try:
            if ready is not None:
                ready()
            await self._stop.wait()
        finally:
            server.close()
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            if self._on_stopping is not None:
                self._on_stopping()
            for connection in list(connections):
                connection.shutdown()  # idle ones close now, busy ones after their reply
            # the requests in flight: every task of this loop but this one, and
            # the appends answered without a task (their batches' replies)
            loop.create_task(app.drained())
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            if tasks:
                _done, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS)
                for task in pending:
                    task.cancel()
            outbox.flush()
            for connection in list(connections):
                if connection.transport is not None:
                    connection.transport.close()
            await server.wait_closed()
            while connections:  # connection_lost runs on the next loop turns
                await asyncio.sleep(0)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
