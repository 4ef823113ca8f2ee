"""End to end: the redact plugin removes a secret from what the real server stores.

Log record -> IngressHandler -> delivery engine (prepare_entry on its worker,
through PluginHost and this private plugin manager) -> HTTP -> the local
session-ingress server -> its SQLite store, read back directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import ingress_logging_redact
import pluggy
import pytest

from ingress_logging.delivery import DeliveryEngine
from ingress_logging.handler import IngressHandler
from ingress_logging.plugins import new_plugin_manager
from ingress_logging.server import IngressServer

SECRET = "sk-ant-api03-e2e-very-secret-0123456789"
EMAIL = "jane.doe@example.org"
CARD = "4111-1111-1111-1111"


@pytest.fixture
def redacting_pm(monkeypatch: pytest.MonkeyPatch) -> pluggy.PluginManager:
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_BUILTINS", "tokens,emails,cards")
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_KEYS", "password")
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(ingress_logging_redact, name="redact-e2e")
    return pm


@pytest.fixture
def logger(
    ingress_server: IngressServer, redacting_pm: pluggy.PluginManager
) -> Iterator[tuple[logging.Logger, IngressHandler]]:
    handler = IngressHandler(
        token=ingress_server.token,
        session_id="redact_e2e",
        base_api_url=ingress_server.base_url,
        plugins=redacting_pm,
    )
    log = logging.getLogger("tests.plugins.redact_e2e")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield log, handler
    finally:
        log.removeHandler(handler)
        handler.close()


def test_secrets_never_reach_the_server(
    ingress_server: IngressServer, logger: tuple[logging.Logger, IngressHandler]
) -> None:
    log, handler = logger
    log.info("calling the API with %s for %s, card %s", SECRET, EMAIL, CARD)
    log.info("login", extra={"password": "hunter2-e2e", "user_id": 7})
    log.info("nothing to hide here")
    handler.flush()

    stored = ingress_server.entries("redact_e2e")
    assert len(stored) == 3
    raw = json.dumps(stored)
    for secret in (SECRET, EMAIL, CARD, "hunter2-e2e"):
        assert secret not in raw
    assert raw.count("[REDACTED]") >= 4
    assert "nothing to hide here" in raw
    # The chain is intact: redaction never touches uuid / parentUuid / sessionId.
    assert [e["parentUuid"] for e in stored[1:]] == [e["uuid"] for e in stored[:-1]]
    assert {e["sessionId"] for e in stored} == {"redact_e2e"}


def test_control_without_the_plugin_the_secret_is_stored(ingress_server: IngressServer) -> None:
    """Proves the test above can fail: the same path with no redaction ships the secret."""
    handler = IngressHandler(
        token=ingress_server.token,
        session_id="redact_e2e_control",
        base_api_url=ingress_server.base_url,
        plugins=new_plugin_manager(load_entrypoints=False),
    )
    log = logging.getLogger("tests.plugins.redact_e2e_control")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("calling the API with %s", SECRET)
        handler.flush()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert SECRET in json.dumps(ingress_server.entries("redact_e2e_control"))


def test_misconfigured_redaction_fails_closed(
    ingress_server: IngressServer,
    logger: tuple[logging.Logger, IngressHandler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log, handler = logger
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_PATTERNS", "[not json")
    log.info("while misconfigured: %s", SECRET)
    handler.flush()
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_PATTERNS", "[]")
    log.info("after the fix: %s", SECRET)
    handler.flush()

    stored = ingress_server.entries("redact_e2e")
    raw = json.dumps(stored)
    assert SECRET not in raw
    assert "while misconfigured" not in raw  # dropped, not shipped unredacted
    assert len(stored) == 1
    assert "after the fix" in raw
    # The drop is counted where operators look: the engine's health.
    engine = handler.engine
    assert isinstance(engine, DeliveryEngine)
    assert engine.stats().dropped_by_reason.get("prepare_entry") == 1
