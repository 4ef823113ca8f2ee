"""Fixtures for the plugin tests: a clean environment and private managers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pluggy
import pytest

from ingress_logging.plugins import new_plugin_manager


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No INGRESS_LOGGING_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("INGRESS_LOGGING_"):
            monkeypatch.delenv(name)


@pytest.fixture
def pm() -> pluggy.PluginManager:
    """A private manager with only the hookspecs and the default plugin."""
    return new_plugin_manager(load_entrypoints=False)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` passes.

    The delivery engine hands diagnostics to the sinks on a reporter thread
    of its own, so ``flush()`` returning does not mean the sinks have been
    called yet.
    """

    def wait(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.005)

    return wait
