"""Serving the ASGI app with uvicorn's HTTP/1.1 protocol (httptools), on a socket we own.

Three additions to uvicorn's protocol, the first two needed by the
protocol's test faults and error rules:

* ``scope["extensions"]["ingress_logging.drop"]`` closes the connection with
  no response bytes (the lost reply after a commit, a real TCP close);
* requests the parser refuses (bad framing, an unknown method) get the same
  JSON error body as every other error, instead of uvicorn's plain text;
* replies leave through an :class:`Outbox`: the replies finished in one turn
  of the event loop are written together at its end, not one by one between
  the requests' own work. Waking the client's side of a connection is most
  of the cost of a write (on loopback, and far more in a virtual machine,
  where it wakes an idle CPU), and a client woken by the first reply of a
  turn is still awake for the others. A reply waits at most for the rest of
  its turn (the other requests' work that was ready at the same time).

:class:`Runner` owns one event loop and one listening socket: in a
background thread (``run_server``, tests) or in the foreground (``serve``,
each worker process). Stopping is immediate: the listener closes, idle
keep-alive connections are closed, requests in flight finish (an injected
latency is cut short), then the loop ends. uvicorn's own ``Server`` polls for
shutdown every 100 ms and sleeps 100 ms more while stopping, too slow for a
test suite that starts hundreds of servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from ._wire import ERROR_TYPES

__all__ = ["DROP_EXTENSION", "IngressProtocol", "Outbox", "Runner", "bind_socket"]

logger = logging.getLogger("ingress_logging.server")
DROP_EXTENSION = "ingress_logging.drop"
_STATUS_TEXT = {400: "Bad Request", 501: "Not Implemented"}
#: How long stop() lets requests in flight finish before cancelling them.
GRACE_SECONDS = 10.0


#: uvicorn's connection messages go here. A level is set because uvicorn logs
#: per connection when ``logger.level <= TRACE``, which NOTSET (0) satisfies.
_ERROR_LOGGER = logging.getLogger("ingress_logging.server.http")
_ERROR_LOGGER.setLevel(logging.INFO)
_ACCESS_LOGGER = logging.getLogger("ingress_logging.server.http.access")


class IngressProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a drop hook and JSON framing errors.

    ``__init__`` repeats uvicorn's without its per-connection
    ``logging.getLogger()`` and ``hasHandlers()`` calls and with a logger that
    is not at TRACE level: all three take the logging module's lock, and an
    application that holds it (``dictConfig`` flushing its handlers) while its
    log handler waits for this server - running in the same process, as in
    tests - would never get an answer.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        outbox: Outbox | None = None,
    ) -> None:
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.outbox = outbox if outbox is not None else Outbox(self.loop)
        self.logger = _ERROR_LOGGER
        self.access_logger = _ACCESS_LOGGER
        self.access_log = False  # the app writes its own JSON access log
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.ws_protocol_class = config.ws_protocol_class
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.limit_concurrency = config.limit_concurrency
        self.app_state = app_state
        self.timeout_keep_alive_task = None
        self.timeout_keep_alive = config.timeout_keep_alive
        self.server_state = server_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.transport = None  # type: ignore[assignment]
        self.flow = None  # type: ignore[assignment]
        self.server = None
        self.client = None
        self.scheme = None
        self.pipeline = deque()
        self.scope = None  # type: ignore[assignment]
        self.headers = None  # type: ignore[assignment]
        self.expect_100_continue = False
        self.cycle = None  # type: ignore[assignment]
        # Corked transports of the cycles not yet flushed, in request order: with
        # pipelined requests ``self.cycle`` is the newest parsed one, not the one
        # whose response just completed.
        self._corked: deque[_Corked] = deque()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            self._refuse(501, "method not implemented")
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            corked = _Corked(self.transport, cycle, self.outbox)
            self._corked.append(corked)
            cycle.transport = corked  # type: ignore[assignment]
            extensions: dict[str, Any] = dict(self.scope.get("extensions") or {})
            extensions[DROP_EXTENSION] = partial(_drop, cycle, self.transport, self.outbox)
            self.scope["extensions"] = extensions

    def on_response_complete(self) -> None:
        corked = self._corked
        while corked and corked[0].complete:
            corked.popleft().flush()
        super().on_response_complete()

    def shutdown(self) -> None:
        self.outbox.flush()  # a finished reply leaves before an idle connection closes
        super().shutdown()

    def _refuse(self, status: int, message: str) -> None:
        body = json.dumps(
            {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error")}}
        ).encode()
        head = (
            f"HTTP/1.1 {status} {_STATUS_TEXT.get(status, 'Error')}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        if not self.transport.is_closing():
            self.outbox.flush()  # an earlier reply on this connection goes first
            self.transport.write(head + body)
            self.transport.close()


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


class _Corked:
    """The transport as one response cycle sees it: the status line and headers
    wait for the first body bytes, so a reply leaves in one write (one syscall,
    one segment) instead of two, through the :class:`Outbox`. Later body
    chunks follow at the end of their loop turn, so a streamed reply
    (server-sent events) flows as it is written; so do writes outside a
    response (``100 Continue``)."""

    def __init__(
        self, transport: asyncio.Transport, cycle: RequestResponseCycle, outbox: Outbox
    ) -> None:
        self._transport = transport
        self._cycle = cycle
        self._outbox = outbox
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data = self._head + data
            self._head = None
        elif (
            not self._head_seen
            and self._cycle.response_started
            and not self._cycle.response_complete
        ):
            self._head = data
            self._head_seen = True
            return
        self._outbox.write(self._transport, data)

    @property
    def complete(self) -> bool:
        return bool(self._cycle.response_complete)

    def flush(self) -> None:
        if self._head is not None:
            data, self._head = self._head, None
            self._outbox.write(self._transport, data)

    def close(self) -> None:
        self.flush()
        self._outbox.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


def _drop(cycle: RequestResponseCycle, transport: asyncio.BaseTransport, outbox: Outbox) -> None:
    """Close the connection without a byte of reply (uvicorn then sends nothing);
    an earlier reply on it still waiting in the outbox leaves first."""
    cycle.disconnected = True
    outbox.flush()
    transport.close()


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
    """One event loop serving ``app`` on ``sock`` with :class:`IngressProtocol`.

    ``on_stopping`` runs on the loop when a stop begins (the app wakes its
    latency waits there). ``keep_alive`` is how long an idle connection is kept.
    """

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        *,
        on_stopping: Callable[[], None] | None = None,
        keep_alive: float = 3600.0,
        ssl_context: ssl.SSLContext | None = None,
        periodic: tuple[float, Callable[[], object]] | None = None,
    ) -> None:
        self.sock = sock
        self._config = Config(
            app,
            http=IngressProtocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            date_header=False,  # the app sends Date (uvicorn's is refreshed by its Server)
            timeout_keep_alive=int(keep_alive),
            ws="none",
        )
        self._config.load()
        self._ssl = ssl_context
        self._state = ServerState()
        self._on_stopping = on_stopping
        self._periodic = periodic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def connection_count(self) -> int:
        return len(self._state.connections)

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

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: Callable[[], None] | None
    ) -> None:
        config, state = self._config, self._state
        outbox = Outbox(loop)

        def factory() -> asyncio.Protocol:
            return IngressProtocol(
                config=config, server_state=state, app_state={}, _loop=loop, outbox=outbox
            )

        self._stop = asyncio.Event()
        self._loop = loop
        server = await loop.create_server(factory, sock=self.sock, ssl=self._ssl, backlog=512)
        ticker = None if self._periodic is None else loop.create_task(self._tick(*self._periodic))
        try:
            if ready is not None:
                ready()
            await self._stop.wait()
        finally:
            server.close()
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            if self._on_stopping is not None:
                self._on_stopping()
            for connection in list(state.connections):
                connection.shutdown()  # idle ones close now, busy ones after their reply
            if state.tasks:
                _done, pending = await asyncio.wait(list(state.tasks), timeout=GRACE_SECONDS)
                for task in pending:
                    task.cancel()
            outbox.flush()
            for connection in list(state.connections):
                connection.transport.close()
            await server.wait_closed()
            while state.connections:  # connection_lost runs on the next loop turns
                await asyncio.sleep(0)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
