"""Fixtures for the plugin tests: a clean environment and private managers."""

from __future__ import annotations

import os

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
