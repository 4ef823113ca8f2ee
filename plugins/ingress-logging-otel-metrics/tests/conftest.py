"""Each test starts with no INGRESS_LOGGING_* setting from the developer's shell."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INGRESS_LOGGING_"):
            monkeypatch.delenv(name)
