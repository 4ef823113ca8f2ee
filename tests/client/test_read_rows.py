"""PROTOCOL.md's read table and events rules, row by row, both drivers."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest

from ingress_logging import SessionExpiredError
from ingress_logging import diagnostics as ev
from ingress_logging.errors import SESSION_EXPIRED_MESSAGE


def entry(**extra: Any) -> dict[str, Any]:
    return {"type": "user", "uuid": str(uuid.uuid4()), **extra}


def fill(srv: Any, sid: str, entries: list[dict[str, Any]]) -> None:
    for e in entries:
        srv.store.append(sid, e, orjson.dumps(e).decode(), srv.head(sid))


# --- session read ------------------------------------------------------------


def test_read_returns_loglines_and_adopts_the_last_uuid(client, ingress_server):
    stored = [entry(), entry(), entry()]
    fill(ingress_server, "s", stored)
    assert client.get_session_logs("s", ingress_server.session_url("s")) == stored
    assert client.append_session_log("s", entry())
    last_put = ingress_server.wait_for_requests(2)[1]
    assert last_put.last_uuid == stored[-1]["uuid"]
    assert last_put.status == 200


def test_read_whose_last_entry_has_no_uuid_leaves_the_head(client, ingress_server):
    fill(ingress_server, "s", [entry(), {"type": "summary", "summary": "s"}])
    logs = client.get_session_logs("s")
    assert logs is not None
    assert len(logs) == 2
    assert client.append_session_log("s", entry())
    # no head adopted (the seed looks at the last entry only), so no Last-Uuid
    assert ingress_server.wait_for_requests(2)[1].last_uuid is None


def test_read_after_last_compact(client, ingress_server):
    before = entry()
    boundary = {"type": "system", "subtype": "compact_boundary", "uuid": str(uuid.uuid4())}
    after = entry(isCompactSummary=True)
    fill(ingress_server, "s", [before, boundary, after])
    full = client.get_session_logs("s")
    compacted = client.get_session_logs("s", after_last_compact=True)
    assert full == [before, boundary, after]
    assert compacted is not None
    assert before not in compacted
    assert compacted[-1] == after
    assert ingress_server.wait_for_requests(2)[1].query == "after_last_compact=true"


def test_read_404_is_an_empty_list(client, ingress_server, diagnostics):
    assert client.get_session_logs("never-written") == []
    assert diagnostics.names() == [ev.SESSION_GET_NO_LOGS_FOR_SESSION]


def test_read_401_raises_session_expired(make_client, ingress_server, diagnostics):
    client = make_client(token="wrong")
    with pytest.raises(SessionExpiredError) as info:
        client.get_session_logs("s")
    assert str(info.value) == SESSION_EXPIRED_MESSAGE
    assert str(info.value).startswith("the server rejected the token (401)")
    assert "/login" not in str(info.value)
    assert diagnostics.names() == [ev.SESSION_GET_FAIL_BAD_TOKEN]


def test_read_other_status_is_none(client, ingress_server, diagnostics):
    fill(ingress_server, "s", [entry()])
    ingress_server.faults.fail_next(1, status=500, method="GET")
    assert client.get_session_logs("s") is None
    assert diagnostics.data(ev.SESSION_GET_FAIL_STATUS) == [{"status": 500}]


def test_read_without_token_makes_no_request(make_client, ingress_server, diagnostics):
    client = make_client(token=None)
    assert client.get_session_logs("s") is None
    assert ingress_server.requests == []
    assert diagnostics.names() == [ev.SESSION_GET_FAIL_NO_TOKEN]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"loglines": "nope"}',
        b'{"loglines": [1, 2]}',
        b'{"other": []}',
        b"null",
        b"\xff\xfe",
    ],
)
def test_read_of_the_wrong_shape_is_an_error(make_client, scripted, diagnostics, body):
    client = make_client(token="t", base_api_url=scripted.base_url)
    scripted.push(200, body, {"Content-Type": "application/json"})
    assert client.get_session_logs("s", scripted.session_url("s")) is None
    assert diagnostics.names() == [ev.SESSION_GET_FAIL_INVALID_RESPONSE]


def test_read_larger_than_the_cap_is_an_error(make_client, ingress_server, diagnostics):
    client = make_client(max_response_bytes=2048)
    fill(ingress_server, "s", [entry(blob="x" * 4096)])
    assert client.get_session_logs("s") is None
    assert diagnostics.names() == [ev.SESSION_GET_FAIL_STATUS]
    # a read under the cap still works on the same client afterwards
    fill(ingress_server, "small", [entry()])
    logs = client.get_session_logs("small")
    assert logs is not None
    assert len(logs) == 1


def test_chunked_body_larger_than_the_cap_is_an_error(make_client, scripted, diagnostics):
    client = make_client(base_api_url=scripted.base_url, max_response_bytes=2048)
    big = orjson.dumps({"loglines": [entry(blob="x" * 10_000)]})
    scripted.push(200, big, {"Transfer-Encoding": "chunked"})
    assert client.get_session_logs("s", scripted.session_url("s")) is None
    assert diagnostics.names() == [ev.SESSION_GET_FAIL_STATUS]
    small = orjson.dumps({"loglines": [entry()]})
    scripted.push(200, small, {"Transfer-Encoding": "chunked"})
    logs = client.get_session_logs("s", scripted.session_url("s"))
    assert logs == orjson.loads(small)["loglines"]


def test_read_that_stalls_times_out_as_an_error(make_client, ingress_server, diagnostics):
    client = make_client(read_timeout=0.2)
    fill(ingress_server, "s", [entry()])
    ingress_server.faults.latency = 2.0
    started = time.monotonic()
    assert client.get_session_logs("s") is None
    assert time.monotonic() - started < 1.5
    assert diagnostics.data(ev.SESSION_GET_FAIL_STATUS) == [{}]


def test_read_transport_error_is_none(make_client, ingress_server, diagnostics):
    client = make_client()
    url = ingress_server.session_url("s")
    ingress_server.stop()
    assert client.get_session_logs("s", url) is None
    assert diagnostics.data(ev.SESSION_GET_FAIL_STATUS) == [{}]


def test_oauth_read_sends_the_seeds_headers(client, ingress_server, scripted):
    fill(ingress_server, "s", [entry()])
    srv = ingress_server
    logs = client.get_session_logs_via_oauth("s", srv.oauth_token, srv.org_uuid)
    assert logs == srv.entries("s")
    assert srv.wait_for_requests(1)[0].path == "/v1/session_ingress/session/s"


def test_oauth_read_header_set(make_client, scripted):
    client = make_client(base_api_url=scripted.base_url)
    scripted.push(200, b'{"loglines": []}')
    assert client.get_session_logs_via_oauth("s", "oauth-tok", "org-1") == []
    headers = {k.lower(): v for k, v in scripted.seen[0].headers.items()}
    assert headers["authorization"] == "Bearer oauth-tok"
    assert headers["content-type"] == "application/json"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["x-organization-uuid"] == "org-1"


def test_oauth_read_401_raises(client, ingress_server):
    with pytest.raises(SessionExpiredError):
        client.get_session_logs_via_oauth("s", "bad", ingress_server.org_uuid)


def test_oauth_read_wrong_org_is_none(client, ingress_server, diagnostics):
    assert client.get_session_logs_via_oauth("s", ingress_server.oauth_token, "other") is None
    assert diagnostics.data(ev.SESSION_GET_FAIL_STATUS) == [{"status": 403}]


# --- teleport events ---------------------------------------------------------


def oauth(srv: Any) -> tuple[str, str]:
    return srv.oauth_token, srv.org_uuid


def test_events_are_paged_with_the_cursor_echoed(client, ingress_server):
    payloads = [entry(n=i) for i in range(1500)]
    for p in payloads:
        ingress_server.add_event("s", p)
    assert client.get_teleport_events("s", *oauth(ingress_server)) == payloads
    first, second = ingress_server.wait_for_requests(2)
    assert first.query == "limit=1000"
    assert "cursor=" not in first.query
    assert "cursor=" in second.query


def test_events_with_null_payload_are_skipped(client, ingress_server):
    a, b = entry(), entry()
    ingress_server.add_event("s", a)
    ingress_server.add_event("s", None)
    ingress_server.add_event("s", b)
    assert client.get_teleport_events("s", *oauth(ingress_server)) == [a, b]


def test_events_404_on_first_page_is_none(client, ingress_server, diagnostics):
    assert client.get_teleport_events("missing", *oauth(ingress_server)) is None
    assert diagnostics.data(ev.TELEPORT_EVENTS_NOT_FOUND) == [{}]  # the seed logs no fields


def test_events_404_on_a_later_page_returns_what_was_gathered(client, ingress_server):
    payloads = [entry(n=i) for i in range(1001)]
    for p in payloads:
        ingress_server.add_event("s", p)
    ingress_server.faults.script([None, 404], method="GET")
    assert client.get_teleport_events("s", *oauth(ingress_server)) == payloads[:1000]


def test_events_cursor_that_never_ends_stops_at_the_page_cap(client, ingress_server, diagnostics):
    ingress_server.add_event("s", entry())
    ingress_server.faults.endless_teleport_cursor = True
    events = client.get_teleport_events("s", *oauth(ingress_server))
    assert events is not None
    assert len(events) == 1
    assert len(ingress_server.wait_for_requests(100)) == 100
    assert diagnostics.data(ev.TELEPORT_EVENTS_PAGE_CAP) == [{}]  # the seed logs no fields


def test_events_401_raises(client, ingress_server, diagnostics):
    with pytest.raises(SessionExpiredError):
        client.get_teleport_events("s", "bad", ingress_server.org_uuid)
    assert diagnostics.names() == [ev.TELEPORT_EVENTS_BAD_TOKEN]


def test_events_5xx_is_none_reported_as_a_failed_fetch(client, ingress_server, diagnostics):
    ingress_server.add_event("s", entry())
    ingress_server.faults.fail_next(1, status=500, method="GET")
    assert client.get_teleport_events("s", *oauth(ingress_server)) is None
    # The seed's axios rejects every 5xx, so it reports a failed fetch.
    assert diagnostics.data(ev.TELEPORT_EVENTS_FETCH_FAIL) == [{}]  # the seed logs no fields


def test_events_other_non_200_is_none_reported_as_bad_status(client, ingress_server, diagnostics):
    ingress_server.add_event("s", entry())
    ingress_server.faults.fail_next(1, status=403, method="GET")
    assert client.get_teleport_events("s", *oauth(ingress_server)) is None
    assert diagnostics.data(ev.TELEPORT_EVENTS_BAD_STATUS) == [{"status": 403}]


@pytest.mark.parametrize(
    "body",
    [b"garbage", b'{"data": {}}', b'{"data": [1]}', b'{"data": [], "next_cursor": 5}', b"[]"],
)
def test_events_invalid_shape_is_none(make_client, scripted, diagnostics, body):
    client = make_client(base_api_url=scripted.base_url)
    scripted.push(200, body)
    assert client.get_teleport_events("s", "tok", "org") is None
    assert diagnostics.names() == [ev.TELEPORT_EVENTS_INVALID_SHAPE]


def test_events_transport_error_is_none(make_client, ingress_server, diagnostics):
    client = make_client()
    ingress_server.stop()
    assert client.get_teleport_events("s", *oauth(ingress_server)) is None
    assert diagnostics.names() == [ev.TELEPORT_EVENTS_FETCH_FAIL]


def test_events_null_cursor_ends_the_stream(make_client, scripted):
    client = make_client(base_api_url=scripted.base_url)
    page = {"data": [{"event_id": "e", "payload": {"a": 1}}], "next_cursor": None}
    scripted.push(200, orjson.dumps(page))
    assert client.get_teleport_events("s", "tok", "org") == [{"a": 1}]
    assert len(scripted.seen) == 1
