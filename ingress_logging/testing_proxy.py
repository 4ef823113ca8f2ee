"""A network round trip on loopback: a TCP proxy that delays bytes, not requests.

``DelayProxy(target_url, rtt=0.05)`` listens on an ephemeral loopback port and
forwards every connection to ``target_url``'s host and port. Each chunk of
bytes is released ``rtt / 2`` after it arrived, in each direction, so a reply
reaches the client one ``rtt`` after its request was written - and a
connection's requests are never serialised: two requests written back to back
on one connection arrive back to back, half a round trip later, exactly as on
a real network path. (A server-side sleep, like the local server's ``latency``
fault, holds the connection while it sleeps and so serialises pipelined
requests; it cannot show what pipelining gains.)

A new connection pays one round trip for the TCP handshake: its first bytes
towards the target are released no earlier than ``rtt`` after it was
accepted, plus ``rtt / 2``. TLS is not terminated or modelled (its bytes would
be delayed like any others, its extra round trips are not added).

End of stream is forwarded like data (``rtt / 2`` later), so a server that
closes a connection without replying - the local server's
``drop_after_commit`` fault - reaches the client as a dropped connection.
Bandwidth is not limited.

The proxy runs one asyncio event loop on a daemon thread; ``close()`` stops
it and closes every connection. Usable from tests (the ``delay_proxy``
fixture of :mod:`ingress_logging.testing`), benchmarks, and
``ingress-logging serve --rtt 50ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

__all__ = ["DelayProxy", "parse_duration"]

_CHUNK: Final = 65536
_UNITS: Final = {"ms": 0.001, "s": 1.0}


def parse_duration(text: str) -> float:
    """``"50ms"``, ``"0.05s"`` or ``"0.05"`` (seconds) -> seconds; ValueError otherwise."""
    raw = text.strip().lower()
    scale = 1.0
    for unit, factor in _UNITS.items():
        if raw.endswith(unit):
            raw, scale = raw[: -len(unit)].strip(), factor
            break
    try:
        value = float(raw) * scale
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (try 50ms or 0.05)") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"not a duration: {text!r} (must be >= 0)")
    return value


class DelayProxy:
    """A delaying TCP proxy in front of ``target`` (``http://host:port``).

    ``rtt`` is the round trip added, in seconds. ``base_url`` is the proxy's
    own ``http://127.0.0.1:PORT``, to use as a client's ``base_api_url``;
    ``connections`` counts the connections accepted so far.
    """

    def __init__(self, target: str, *, rtt: float, host: str = "127.0.0.1", port: int = 0) -> None:
        if not rtt >= 0:
            raise ValueError(f"rtt must be >= 0 seconds, not {rtt!r}")
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError("target must be an http(s)://host:port URL")
        self.target_host: str = parts.hostname
        self.target_port: int = parts.port or (443 if parts.scheme == "https" else 80)
        self._scheme = parts.scheme
        self.rtt = float(rtt)
        self.host = host
        self.port = port
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def __repr__(self) -> str:
        return (
            f"DelayProxy({self.host}:{self.port} -> {self.target_host}:{self.target_port},"
            f" rtt={self.rtt * 1000:g}ms)"
        )

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self._scheme}://{host}:{self.port}"

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> Self:
        """Listen and forward on a background thread; idempotent."""
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name=f"ingress-logging-delay-proxy:{self.port}", daemon=True
        )
        thread.start()
        try:
            future = asyncio.run_coroutine_threadsafe(self._listen(), loop)
            self._server = future.result(timeout=10)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop, self._thread = loop, thread
        return self

    def close(self) -> None:
        """Stop listening, close every connection and the event loop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- on the event loop ----------------------------------------------------

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, self.host, self.port)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self._writers.add(client_w)
        try:
            await self._forward(client_r, client_w)
        except asyncio.CancelledError:
            # close(): end quietly (asyncio's stream callback would report a
            # cancelled connection task as an error).
            pass
        finally:
            self._writers.discard(client_w)
            client_w.transport.abort()
            self._tasks.discard(task)

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        handshake_done = asyncio.get_running_loop().time() + self.rtt
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            # The target refuses: the client sees its connection closed, a
            # round trip after it opened it.
            await asyncio.sleep(self.rtt)
            return
        self._writers.add(server_w)
        try:
            await asyncio.gather(
                self._pump(client_r, server_w, not_before=handshake_done),
                self._pump(server_r, client_w, not_before=0.0),
            )
        finally:
            self._writers.discard(server_w)
            server_w.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, not_before: float
    ) -> None:
        """Forward one direction: each chunk released ``rtt / 2`` after it arrived.

        The reader never waits for the writer, so chunks keep arriving (and
        keep their own release times) while earlier ones are still held.
        """
        loop = asyncio.get_running_loop()
        half = self.rtt / 2
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = b""
                held.put_nowait((max(loop.time(), not_before) + half, data))
                if not data:
                    return

        reading = asyncio.ensure_future(read())
        try:
            while True:
                release, data = await held.get()
                wait = release - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                try:
                    writer.write(data)
                    await writer.drain()
                except OSError:
                    # The far side is gone: what it would have received is lost,
                    # as on a real path; the other direction ends on its own.
                    return
        finally:
            # At end of stream the reader has finished; after a failed write
            # or a cancellation nothing more is forwarded this way.
            reading.cancel()
