"""The public surface of issue 3, locked: names, parameters, sync vs coroutine."""

from __future__ import annotations

import inspect

import pytest

import ingress_logging
from ingress_logging import AsyncSessionIngressClient, SessionIngressClient

CONSTRUCTOR = [
    "token",
    "base_api_url",
    "retry_policy",
    "retry",
    "timeout",
    "read_timeout",
    "http_client",
    "client",
    "diagnostics",
    "plugins",
    "allow_insecure_http",
]
OPERATIONS = {
    "append_session_log": ["session_id", "entry", "url"],
    "get_session_logs": ["session_id", "url", "after_last_compact"],
    "get_session_logs_via_oauth": ["session_id", "access_token", "org_uuid"],
    "get_teleport_events": ["session_id", "access_token", "org_uuid"],
    "advance": ["pending"],
}


def test_top_level_exports():
    assert ingress_logging.SessionIngressClient is SessionIngressClient
    assert ingress_logging.AsyncSessionIngressClient is AsyncSessionIngressClient
    assert issubclass(ingress_logging.InvalidSessionIdError, ValueError)
    assert issubclass(ingress_logging.InsecureTransportError, ValueError)


@pytest.mark.parametrize("cls", [SessionIngressClient, AsyncSessionIngressClient])
def test_constructor_parameters(cls):
    params = inspect.signature(cls).parameters
    assert list(params)[: len(CONSTRUCTOR)] == CONSTRUCTOR
    assert params["token"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in CONSTRUCTOR[1:])
    assert params["read_timeout"].default == 20.0
    assert params["allow_insecure_http"].default is False


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operations_have_the_same_shape_in_both_clients(name):
    sync, coro = getattr(SessionIngressClient, name), getattr(AsyncSessionIngressClient, name)
    assert not inspect.iscoroutinefunction(sync)
    assert inspect.iscoroutinefunction(coro)
    expected = ["self", *OPERATIONS[name]]
    assert list(inspect.signature(sync).parameters) == expected
    assert list(inspect.signature(coro).parameters) == expected
    if name == "get_session_logs":
        after = inspect.signature(sync).parameters["after_last_compact"]
        assert after.kind is inspect.Parameter.KEYWORD_ONLY
        assert after.default is False


@pytest.mark.parametrize("cls", [SessionIngressClient, AsyncSessionIngressClient])
def test_shared_step_and_state_methods(cls):
    for name in ("begin_append", "resume", "clear_session", "clear_all_sessions"):
        assert not inspect.iscoroutinefunction(getattr(cls, name)), name
    assert list(inspect.signature(cls.begin_append).parameters) == [
        "self",
        "session_id",
        "entry",
        "url",
    ]
