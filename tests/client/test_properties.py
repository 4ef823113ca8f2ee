"""Hypothesis properties: session-id handling and reply parsing never crash or escape.

Reply parsing is exercised twice: on the sans-I/O core with structured JSON
(bodies that get past the JSON parser and stress the shape checks), and
through the blocking client over a real socket with arbitrary bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress_logging import (
    AsyncSessionIngressClient,
    InvalidSessionIdError,
    SessionExpiredError,
    SessionIngressClient,
)
from ingress_logging.plugins import new_plugin_manager
from ingress_logging.protocol import TELEPORT_MAX_PAGES, TeleportPager, interpret_read

#: A loaded CI machine can stall any example past hypothesis's 200 ms default
#: deadline (a Flaky failure); these properties are about results, not speed.
NO_DEADLINE = settings(deadline=None)
FIXTURES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
entries = st.dictionaries(st.sampled_from(["uuid", "type", "x"]), json_values, max_size=3)
read_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"loglines": st.lists(entries | json_values, max_size=4)}),
)
events = st.fixed_dictionaries(
    {"payload": st.none() | entries | json_values}, optional={"event_id": st.text(max_size=4)}
)
pages = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"data": st.lists(events | json_values, max_size=3)},
        optional={"next_cursor": st.none() | st.text(max_size=6) | st.integers(0, 99)},
    ),
)


def _sink(*_: Any) -> None:
    pass


def _is_entries(result: Any) -> bool:
    return isinstance(result, list) and all(isinstance(e, dict) for e in result)


# --- session ids -------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_client():
    # token=None: begin_append decides "no token" without touching the network
    with SessionIngressClient(
        None, base_api_url="https://ingress.example", plugins=_pm()
    ) as client:
        yield client


@given(sid=st.text(max_size=300))
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_session_id_is_refused_or_stays_one_path_segment(offline_client, sid):
    try:
        pending = offline_client.begin_append(sid, {"uuid": "u"})
    except InvalidSessionIdError:
        return  # refused before any URL was built
    path = urlsplit(pending.url).path
    prefix = "/v1/session_ingress/session/"
    assert path.startswith(prefix)
    segment = path[len(prefix) :]
    assert "/" not in segment
    assert unquote(segment) == sid
    assert sid not in (".", "..")
    assert all(c.isprintable() and not c.isspace() for c in sid)


@given(sid=st.text(alphabet="./%\\\r\n\x00 ?#", min_size=1, max_size=6))
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ids_made_of_path_and_control_characters_are_all_refused(offline_client, sid):
    with pytest.raises(InvalidSessionIdError):
        offline_client.get_session_logs(sid)


# --- reply parsing, sans-I/O ---------------------------------------------------


@given(status=st.sampled_from([200, 200, 200, 404, 401, 500]), body=read_bodies)
@NO_DEADLINE
def test_read_interpretation_of_arbitrary_json(status, body):
    raw = orjson.dumps(body)
    try:
        result = interpret_read(status, raw, _sink)
    except SessionExpiredError:
        assert status == 401
        return
    assert result is None or _is_entries(result)
    if status == 404:
        assert result == []
    if result and status == 200:
        assert result == body["loglines"]


@given(replies=st.lists(st.tuples(st.sampled_from([200, 200, 200, 404, 401, 503]), pages)))
@NO_DEADLINE
def test_pager_over_arbitrary_page_sequences_terminates(replies):
    pager = TeleportPager(_sink)
    feeds = 0
    source = iter(replies)
    while pager.next_params() is not None:
        reply = next(source, None)
        if reply is None:
            # the script ran dry: end the stream like a server would
            pager.on_response(200, b'{"data": []}')
        else:
            try:
                pager.on_response(reply[0], orjson.dumps(reply[1]))
            except SessionExpiredError:
                assert reply[0] == 401
                return
        feeds += 1
        assert feeds <= TELEPORT_MAX_PAGES
    assert pager.result is None or _is_entries(pager.result)


# --- reply parsing, through the clients over a socket ---------------------------


@given(
    status=st.sampled_from([200, 200, 404, 401, 500, 302]),
    body=st.binary(max_size=300) | read_bodies.map(orjson.dumps),
)
@FIXTURES
def test_sync_client_read_of_arbitrary_replies(scripted, status, body):
    scripted.push(status, body)
    # one client across examples: a bad reply must not spoil the next request either
    client = _shared_sync_client()
    try:
        result = client.get_session_logs("s", scripted.session_url("s"))
    except SessionExpiredError:
        assert status == 401
        return
    assert result is None or _is_entries(result)


_SHARED: list[SessionIngressClient] = []


def _shared_sync_client() -> SessionIngressClient:
    if not _SHARED:
        _SHARED.append(SessionIngressClient("t", diagnostics=_sink, plugins=_pm()))
    return _SHARED[0]


@pytest.fixture(scope="module", autouse=True)
def _close_shared():
    yield
    for client in _SHARED:
        client.close()


def _pm() -> Any:
    return new_plugin_manager(load_entrypoints=False)


@given(
    status=st.sampled_from([200, 200, 404, 401, 500]),
    body=st.binary(max_size=300) | pages.map(orjson.dumps),
)
@settings(FIXTURES, max_examples=30)
def test_async_client_events_of_arbitrary_replies(scripted, status, body):
    scripted.default = (200, {}, b'{"data": []}')  # later pages end the stream
    scripted.push(status, body)

    async def main() -> list[dict[str, Any]] | None:
        async with AsyncSessionIngressClient(
            base_api_url=scripted.base_url, diagnostics=_sink, plugins=_pm()
        ) as client:
            return await client.get_teleport_events("s", "tok", "org")

    try:
        result = asyncio.run(main())
    except SessionExpiredError:
        assert status == 401
        return
    assert result is None or _is_entries(result)
