"""Fixtures for the delivery engine tests: engines against the real local server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ingress_logging.delivery import DeliveryEngine
from ingress_logging.protocol import RetryPolicy

#: Fast but real backoff for tests: 1 ms, 2 ms, 4 ms ... capped at 20 ms.
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.02)


@pytest.fixture
def make_engine(ingress_server: Any) -> Iterator[Callable[..., DeliveryEngine]]:
    """Build engines pointed at ``ingress_server``; every one is closed at teardown."""
    engines: list[DeliveryEngine] = []

    def factory(**kwargs: Any) -> DeliveryEngine:
        kwargs.setdefault("base_api_url", ingress_server.base_url)
        kwargs.setdefault("token", ingress_server.token)
        kwargs.setdefault("retry_policy", FAST_RETRY)
        kwargs.setdefault("close_timeout", 2.0)
        engine = DeliveryEngine(**kwargs)
        engines.append(engine)
        return engine

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
