"""The public surface of issue 3, locked: names, parameters, sync vs coroutine."""

from __future__ import annotations

import asyncio
import inspect
import uuid

import pytest

import ingress_logging
from ingress_logging import AsyncSessionIngressClient, RetryPolicy, SessionIngressClient

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
    # Issue 3 lists token, base_api_url and the RetryPolicy first: those three may be
    # given positionally, in that order; everything after them is keyword-only.
    positional = CONSTRUCTOR[:3]
    assert all(params[name].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for name in positional)
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in CONSTRUCTOR[3:])
    assert params["read_timeout"].default == 20.0
    assert params["allow_insecure_http"].default is False


def test_token_base_url_and_policy_may_be_positional(ingress_server):
    policy = RetryPolicy(max_attempts=2, base_delay=0.001)
    ingress_server.faults.fail_next(5, status=503)
    with SessionIngressClient(ingress_server.token, ingress_server.base_url, policy) as client:
        assert client.retry_policy is policy
        assert client.append_session_log("s", {"type": "user", "uuid": str(uuid.uuid4())}) is False
    assert len(ingress_server.wait_for_requests(2)) == 2  # the given policy's two attempts
    ingress_server.faults.reset()

    async def main() -> bool:
        async with AsyncSessionIngressClient(
            ingress_server.token, ingress_server.base_url, policy
        ) as client:
            return await client.append_session_log("s", {"type": "user", "uuid": "u-1"})

    assert asyncio.run(main()) is True
    assert [e["uuid"] for e in ingress_server.entries("s")] == ["u-1"]


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
    params = inspect.signature(cls.begin_append).parameters
    assert list(params) == ["self", "session_id", "entry", "url", "chain_parent"]
    assert params["chain_parent"].kind is inspect.Parameter.KEYWORD_ONLY
