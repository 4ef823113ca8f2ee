"""Fixtures for the handler tests.

``RecordingEngine`` implements the engine contract the handler codes
against (submit/flush/is_worker_thread) and keeps what it is given, so the
front-door logic (session resolution, recursion refusal, drops) is checked
without a network. Delivery itself is tested end to end in test_end_to_end.py
against the real engine and the local server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest


class RecordingEngine:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, Any, object | None]] = []
        self.flushes: list[float | None] = []
        self.worker_idents: set[int] = set()
        self.accept = True

    def submit(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        record: object | None = None,
        size_hint: int | None = None,
    ) -> bool:
        self.submitted.append((session_id, entry, record))
        return self.accept

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes.append(timeout)
        return True

    def is_worker_thread(self) -> bool:
        return threading.get_ident() in self.worker_idents

    def entries(self) -> list[dict[str, Any]]:
        return [e() if callable(e) else e for _, e, _ in self.submitted]

    def sessions(self) -> list[str]:
        return [sid for sid, _, _ in self.submitted]


@pytest.fixture
def recording_engine() -> RecordingEngine:
    return RecordingEngine()


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A fresh, non-propagating DEBUG logger; its handlers are removed afterwards."""
    logger = logging.getLogger(f"tests.handler.app{id(object())}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
