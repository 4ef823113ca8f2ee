"""Shared fixtures of the fault suite: one known token, a leak guard, helpers.

Every test here uses ``TOKEN`` (via the ``token`` fixture) for its server and
its clients, and the autouse ``leak_guard`` scans everything the test let out
- stdout/stderr at the file-descriptor level, every log record of every
logger at DEBUG (httpx and httpcore included), diagnostics events, and the
output of child processes handed to ``leak_guard.add`` - and fails the test
if the token shows up anywhere.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingress_logging.diagnostics import DiagnosticData, Level
from ingress_logging.server import IngressServer

TOKEN = "rel-SECRET-7c1e2f90d4b3-token"

#: A self-signed certificate for 127.0.0.1 (valid until 2125), only ever used
#: by the TLS test to show that an unverifiable server gets no request.
TEST_CERT_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUcq+Vid0Ed4leWmGcpbVsDePa8JgwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNTA5NDEyNVoYDzIxMjYxMTAx
MDk0MTI1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQAVL1uiKVeaKWVpRnejHkbYnJLBBSgkeE+16Gn3ygKaBXPwbSL8jwA
zItwJuuL2rBnQSZSKw2+me4qoPRIUYIGo28wbTAdBgNVHQ4EFgQUfA5W5Z62BtYQ
B5LEKoq6GWDoWxkwHwYDVR0jBBgwFoAUfA5W5Z62BtYQB5LEKoq6GWDoWxkwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIgQqjWbuxqwj9Pj1RxpCDFQdxFO9/PjSWlPoigcG3Z0YICIQDc
WB8TcxqQarnFULqlFrCjhgpMBIFtEc/BhesBVFyLSA==
-----END CERTIFICATE-----
"""
TEST_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKuKEtoI5bGr6QF35
p9oqOqzF1UZbU9sIQjYUlkiiC7GhRANCAAQAVL1uiKVeaKWVpRnejHkbYnJLBBSg
keE+16Gn3ygKaBXPwbSL8jwAzItwJuuL2rBnQSZSKw2+me4qoPRIUYIG
-----END PRIVATE KEY-----
"""


class LeakGuard:
    """Scans text a test produced as it arrives; ``check()`` fails if the token was in any."""

    def __init__(self) -> None:
        self.scanned = 0
        self.leaks: list[str] = []
        self.events: list[tuple[str, str, dict[str, object]]] = []

    def add(self, *texts: str | bytes | None) -> None:
        for t in texts:
            if t is None:
                continue
            text = t.decode("utf-8", "replace") if isinstance(t, bytes) else t
            self.scanned += 1
            if TOKEN in text:
                # Keep where it was, never the token itself.
                self.leaks.append(text.replace(TOKEN, "<TOKEN>")[:500])

    def sink(self, level: Level, event: str, data: DiagnosticData) -> None:
        """A diagnostics sink for engines and clients under test."""
        self.events.append((level, event, dict(data)))
        self.add(f"{level} {event} {dict(data)!r}")

    def check(self) -> None:
        assert self.scanned > 0, "the leak guard saw nothing: it is not wired in"
        assert not self.leaks, f"the bearer token leaked into captured output: {self.leaks[:3]}"


class _Everything(logging.Handler):
    def __init__(self, guard: LeakGuard) -> None:
        super().__init__(logging.DEBUG)
        self.guard = guard
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.guard.add(self.format(record), repr(record.args), repr(record.__dict__))
        except Exception:  # a record that cannot even be formatted carries no token
            self.guard.add(record.getMessage() if record.args is None else str(record.msg))


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture(autouse=True)
def leak_guard(capfd: pytest.CaptureFixture[str]) -> Iterator[LeakGuard]:
    guard = LeakGuard()
    handler = _Everything(guard)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield guard
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        out, err = capfd.readouterr()
        guard.add(out, err)
        with capfd.disabled():  # keep the printed counts visible (-s, -rA)
            sys.stdout.write(out)
        guard.check()


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    """Environment for child processes: the token only through the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    env["INGRESS_LOGGING_TOKEN"] = TOKEN
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def server(ingress_server_factory: Callable[..., IngressServer]) -> IngressServer:
    """A fresh local server (in-memory db) that accepts ``TOKEN``."""
    return ingress_server_factory(token=TOKEN)


@pytest.fixture
def test_cert() -> tuple[str, str]:
    """(certificate PEM, key PEM) of the self-signed 127.0.0.1 test certificate."""
    return TEST_CERT_PEM, TEST_KEY_PEM


@pytest.fixture(scope="session")
def suite_token() -> str:
    """``TOKEN`` for module- or session-scoped fixtures."""
    return TOKEN
