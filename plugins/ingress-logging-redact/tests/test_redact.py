"""The redact plugin, through a real plugin manager and PluginHost."""

from __future__ import annotations

import json
import re
from typing import Any

import ingress_logging_redact
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingress_logging_redact._redact import Redactor, current_redactor, luhn_valid

from ingress_logging.errors import ConfigError
from ingress_logging.plugins import PluginHost, new_plugin_manager

MASK = "[REDACTED]"
VISA_TEST = "4111 1111 1111 1111"  # a well-known Luhn-valid test number


@pytest.fixture
def host() -> PluginHost:
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(ingress_logging_redact, name="redact")
    return PluginHost(pm, diagnostics=lambda *a: None)


def entry(**fields: Any) -> dict[str, Any]:
    return {"type": "log", "uuid": "u-1", "parentUuid": None, "sessionId": "s1", **fields}


def test_inert_unless_configured(host: PluginHost) -> None:
    e = entry(message=f"mail a@b.example, card {VISA_TEST}", password="hunter2")
    assert host.prepare_entry(e, None) == e


def test_keys_are_masked_at_any_depth_case_insensitively(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_KEYS", "password, API_KEY")
    e = entry(
        message="fine",
        extra={"Password": "hunter2", "nested": [{"api_key": {"deep": "x"}}], "n": 1},
    )
    out = host.prepare_entry(e, None)
    assert out == entry(
        message="fine", extra={"Password": MASK, "nested": [{"api_key": MASK}], "n": 1}
    )
    assert e["extra"]["Password"] == "hunter2"  # the input is not mutated


def test_builtin_detectors(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_BUILTINS", "all")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
    message = (
        f"user jane.doe+x@mail.example.org paid with {VISA_TEST} "
        f"(order 1234567890123 is not a card); auth Bearer abcdefgh12345678 and {jwt} "
        "key sk-ant-api03-abcdefghijklmnop"
    )
    out = host.prepare_entry(entry(message=message, amount=4111111111111111, n=42), None)
    assert out is not None
    text = out["message"]
    for secret in ["jane.doe", VISA_TEST, "abcdefgh12345678", jwt, "sk-ant-api03"]:
        assert secret not in text
    assert "1234567890123" in text  # fails the Luhn check: left alone
    assert out["amount"] == MASK
    assert out["n"] == 42
    assert out["uuid"] == "u-1"


def test_custom_patterns_and_mask(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_PATTERNS", json.dumps([r"acct-\d{6}"]))
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_MASK", "***")
    out = host.prepare_entry(entry(message="acct-123456 and acct-12"), None)
    assert out is not None
    assert out["message"] == "*** and acct-12"


def test_the_ingress_token_itself_is_masked(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN", "plain-looking-token-value")
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_BUILTINS", "tokens")
    out = host.prepare_entry(entry(message="oops plain-looking-token-value leaked"), None)
    assert out is not None
    assert out["message"] == f"oops {MASK} leaked"


def test_protocol_fields_are_never_rewritten(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_PATTERNS", json.dumps(["u-1", "s1"]))
    out = host.prepare_entry(entry(message="u-1 s1"), None)
    assert out == entry(message=f"{MASK} {MASK}")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INGRESS_LOGGING_REDACT_PATTERNS", "not json", "JSON list"),
        ("INGRESS_LOGGING_REDACT_PATTERNS", '["(unclosed"]', "pattern #0"),
        ("INGRESS_LOGGING_REDACT_BUILTINS", "tokens,phones", "phones"),
        ("INGRESS_LOGGING_REDACT_KEYS", "uuid", "protocol fields"),
    ],
)
def test_bad_configuration_fails_closed(
    host: PluginHost,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        current_redactor()
    assert host.prepare_entry(entry(message="top-secret-text"), None) is None
    assert host.prepare_failures == 1
    assert "top-secret-text" not in caplog.text


def test_luhn_known_values() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


@settings(deadline=None)  # timing on a shared CI box is not what this tests
@given(
    number=st.lists(st.integers(0, 9), min_size=15, max_size=18),
    prefix=st.text(alphabet="abc xyz.,", max_size=20),
)
def test_every_luhn_valid_number_in_text_is_masked(number: list[int], prefix: str) -> None:
    digits = "".join(map(str, number))
    # Append the check digit that makes it Luhn-valid.
    check = next(str(d) for d in range(10) if luhn_valid(digits + str(d)))
    card = digits + check
    out = Redactor(cards=True).redact({"message": f"{prefix}{card} end"})
    assert out == {"message": f"{prefix}{MASK} end"}
