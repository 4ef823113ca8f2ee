"""Fixtures for the client tests: both drivers behind one face, a diagnostics
recorder, and a scripted raw-HTTP server for replies the real server never sends.

``client_kind`` parametrizes every test that uses ``make_client`` over the
blocking and the asyncio client, so each scenario proves both drivers behave
the same. The async client runs on a private event loop; calling one of its
coroutine methods through the ``Driver`` runs it to completion.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ingress_logging import AsyncSessionIngressClient, RetryPolicy, SessionIngressClient
from ingress_logging.plugins import new_plugin_manager

FAST = RetryPolicy(base_delay=0.001, max_delay=0.01)


@dataclass
class Diagnostics:
    """Records every diagnostics event and checks that its data is numeric only."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, level: str, event: str, data: Any) -> None:
        for key, value in dict(data).items():
            assert isinstance(key, str)
            assert value is None or isinstance(value, int | float), (event, key, value)
        self.events.append((level, event, dict(data)))

    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]

    def data(self, name: str) -> list[dict[str, Any]]:
        return [data for _, event, data in self.events if event == name]


class Driver:
    """One face for both clients: coroutine methods are run to completion."""

    def __init__(self, client: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.client = client
        self.loop = loop
        self.is_async = loop is not None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if self.loop is not None and inspect.iscoroutinefunction(attr):
            loop = self.loop

            def run(*args: Any, **kwargs: Any) -> Any:
                return loop.run_until_complete(attr(*args, **kwargs))

            return run
        return attr

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the driver's loop (async tests of concurrency)."""
        assert self.loop is not None
        return self.loop.run_until_complete(coro)


@pytest.fixture
def diagnostics() -> Diagnostics:
    return Diagnostics()


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide the token; the environment must not supply one."""
    for name in ("INGRESS_LOGGING_TOKEN", "INGRESS_LOGGING_TOKEN_FILE", "INGRESS_LOGGING_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sync", "async"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(
    client_kind: str, ingress_server: Any, diagnostics: Diagnostics
) -> Iterator[Callable[..., Driver]]:
    """``make_client(**overrides)``: a client of this test's kind, on the test server."""
    loop = asyncio.new_event_loop() if client_kind == "async" else None
    made: list[Driver] = []

    def make(**overrides: Any) -> Driver:
        kwargs: dict[str, Any] = {
            "token": ingress_server.token,
            "base_api_url": ingress_server.base_url,
            "retry_policy": FAST,
            "diagnostics": diagnostics,
            "plugins": new_plugin_manager(load_entrypoints=False),
        }
        kwargs.update(overrides)
        cls = AsyncSessionIngressClient if loop is not None else SessionIngressClient
        driver = Driver(cls(**kwargs), loop)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        if loop is not None:
            loop.run_until_complete(driver.client.aclose())
        else:
            driver.client.close()
    if loop is not None:
        loop.run_until_complete(loop.shutdown_asyncgens())  # as asyncio.run does
        loop.close()


@pytest.fixture
def client(make_client: Callable[..., Driver]) -> Driver:
    return make_client()


# --- a scripted raw-HTTP server ----------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    t: float


Reply = tuple[int, dict[str, str], bytes]


class ScriptedServer:
    """Answers each request with the next scripted reply (real sockets, 127.0.0.1).

    For replies the project's server never sends: bodies that are not JSON or
    have the wrong shape, ``Retry-After`` as an HTTP date. When the script
    runs out it answers ``default``.
    """

    def __init__(self) -> None:
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.default: Reply = (500, {}, b"{}")
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.seen.append(
                    Seen(self.command, self.path, dict(self.headers.items()), time.monotonic())
                )
                try:
                    status, headers, body = outer.replies.get_nowait()
                except queue.Empty:
                    status, headers, body = outer.default
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if headers.get("Transfer-Encoding") == "chunked":
                    # no Content-Length: the client only learns the size by reading
                    self.end_headers()
                    for i in range(0, len(body), 1024):
                        part = body[i : i + 1024]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def session_url(self, session_id: str) -> str:
        return f"{self.base_url}/v1/session_ingress/session/{session_id}"

    def push(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.replies.put((status, headers or {}, body))

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def ingress_server_db(request: pytest.FixtureRequest) -> str:
    """Every client test against the server runs on SQLite and on PostgreSQL
    (a fresh schema; ``pg_url`` in tests/conftest.py)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return ":memory:"
