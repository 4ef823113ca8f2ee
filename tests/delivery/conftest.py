"""Fixtures for the delivery engine tests: engines against the real local server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ingress_logging.delivery import DeliveryEngine
from ingress_logging.plugins import PluginHost
from ingress_logging.protocol import RetryPolicy

#: Fast but real backoff for tests: 1 ms, 2 ms, 4 ms ... capped at 20 ms.
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.02)


@pytest.fixture
def make_engine(ingress_server: Any) -> Iterator[Callable[..., DeliveryEngine]]:
    """Build engines pointed at ``ingress_server``; every one is closed at teardown."""
    engines: list[DeliveryEngine] = []

    def factory(*, diagnostics: Any = None, **kwargs: Any) -> DeliveryEngine:
        if diagnostics is not None:  # a sink: through a host of its own
            kwargs["host"] = PluginHost(
                token=kwargs.pop("token", ingress_server.token),
                base_api_url=kwargs.pop("base_api_url", ingress_server.base_url),
                diagnostics=diagnostics,
            )
        if "host" not in kwargs:
            kwargs.setdefault("base_api_url", ingress_server.base_url)
            kwargs.setdefault("token", ingress_server.token)
        if "transport" not in kwargs:
            kwargs.setdefault("retry_policy", FAST_RETRY)
        kwargs.setdefault("close_timeout", 2.0)
        engine = DeliveryEngine(**kwargs)
        engines.append(engine)
        return engine

    factory.engines = engines  # type: ignore[attr-defined]  # for the gate's teardown
    yield factory
    for engine in engines:
        engine.close(1.0)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """Poll a condition with a deadline (for state another thread settles)."""

    def wait(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}")
            time.sleep(0.002)

    return wait


class RequestGate:
    """Holds every request the engine sends, on its worker, until ``open()``.

    A slow server without a clock: the entry a worker took stays in flight
    exactly as long as the test wants, and opening the gate lets it go at once.
    (The server's ``latency`` switch cannot do this: a request that reached
    the server while it was 30 s waits the full 30 s, or races the client's
    30 s read timeout, however soon the test sets it back to 0.)
    Pass ``http_client=gate.client`` to the engine.
    """

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.holding = threading.Event()  # set once a request is being held
        self.client = httpx.Client(event_hooks={"request": [self._hook]})

    def _hook(self, request: httpx.Request) -> None:
        if not self.opened.is_set():
            self.holding.set()
            self.opened.wait(60.0)  # a test that never opens it still ends

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate(make_engine: Callable[..., DeliveryEngine]) -> Iterator[RequestGate]:
    """A closed ``RequestGate``; at teardown it is opened and the engines are closed
    before its client, so no request is cut off mid-flight (an unclosed socket)."""
    g = RequestGate()
    yield g
    g.open()
    for engine in make_engine.engines:  # type: ignore[attr-defined]
        engine.close(1.0)
    g.client.close()


class Diagnostics:
    """A diagnostics sink that records ``(level, event, data)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, level: str, event: str, data: Any) -> None:
        self.events.append((level, event, dict(data)))

    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]


@pytest.fixture
def diagnostics() -> Diagnostics:
    return Diagnostics()
