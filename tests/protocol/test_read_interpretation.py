from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingress_logging import diagnostics as ev
from ingress_logging.errors import SessionExpiredError
from ingress_logging.protocol import TeleportPager, head_from_read, interpret_read


class Recorder:
    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, level: str, event: str, data: Any) -> None:
        self.names.append(event)


def test_loglines_are_returned_in_order() -> None:
    rec = Recorder()
    body = orjson.dumps({"loglines": [{"uuid": "a"}, {"type": "summary"}]})
    assert interpret_read(200, body, rec) == [{"uuid": "a"}, {"type": "summary"}]
    assert rec.names == []


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"loglines": {}}', b'{"other": []}', b'{"loglines": [1]}']
)
def test_wrong_shapes_are_an_invalid_response(body: bytes) -> None:
    rec = Recorder()
    assert interpret_read(200, body, rec) is None
    assert rec.names == [ev.SESSION_GET_FAIL_INVALID_RESPONSE]


def test_404_is_an_empty_session() -> None:
    rec = Recorder()
    assert interpret_read(404, b"", rec) == []
    assert rec.names == [ev.SESSION_GET_NO_LOGS_FOR_SESSION]


def test_401_raises_session_expired() -> None:
    rec = Recorder()
    with pytest.raises(SessionExpiredError, match=r"the server rejected the token \(401\)"):
        interpret_read(401, b"", rec)
    assert rec.names == [ev.SESSION_GET_FAIL_BAD_TOKEN]


@pytest.mark.parametrize("status", [400, 403, 500, 503])
def test_other_statuses_are_errors(status: int) -> None:
    rec = Recorder()
    assert interpret_read(status, b"{}", rec) is None
    assert rec.names == [ev.SESSION_GET_FAIL_STATUS]


def test_head_comes_from_the_last_entry_only() -> None:
    assert head_from_read([{"uuid": "a"}, {"uuid": "b"}]) == "b"
    assert head_from_read([{"uuid": "a"}, {"type": "summary"}]) is None
    assert head_from_read([]) is None


@given(status=st.integers(min_value=100, max_value=599), body=st.binary(max_size=200))
@settings(deadline=None)  # results, not speed: no flaky deadline on a busy machine
def test_read_never_crashes_on_arbitrary_replies(status: int, body: bytes) -> None:
    try:
        result = interpret_read(status, body, Recorder())
    except SessionExpiredError:
        assert status == 401
    else:
        assert result is None or all(isinstance(e, dict) for e in result)


def page(events: list[Any], cursor: str | None = None) -> bytes:
    doc: dict[str, Any] = {"data": events}
    if cursor is not None:
        doc["next_cursor"] = cursor
    return orjson.dumps(doc)


def event(payload: Any) -> dict[str, Any]:
    return {"event_id": "e", "event_type": "t", "is_compaction": False, "payload": payload}


def test_pager_echoes_the_cursor_and_skips_null_payloads() -> None:
    pager = TeleportPager(Recorder())
    assert pager.next_params() == {"limit": 1000}
    pager.on_response(200, page([event({"n": 1}), event(None)], "c1"))
    assert pager.next_params() == {"limit": 1000, "cursor": "c1"}
    pager.on_response(200, orjson.dumps({"data": [event({"n": 2})], "next_cursor": None}))
    assert pager.next_params() is None
    assert pager.result == [{"n": 1}, {"n": 2}]


def test_404_on_first_page_is_none_and_later_returns_what_was_gathered() -> None:
    first = TeleportPager(Recorder())
    first.next_params()
    first.on_response(404, b"")
    assert first.result is None
    later = TeleportPager(Recorder())
    later.next_params()
    later.on_response(200, page([event({"n": 1})], "c"))
    later.next_params()
    later.on_response(404, b"")
    assert later.result == [{"n": 1}]


def test_page_cap_returns_what_was_gathered_and_reports_it() -> None:
    rec = Recorder()
    pager = TeleportPager(rec, max_pages=3)
    requests = 0
    while pager.next_params() is not None:
        requests += 1
        pager.on_response(200, page([event({"n": requests})], "same"))
    assert requests == 3
    assert pager.result == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert rec.names == [ev.TELEPORT_EVENTS_PAGE_CAP]


def test_a_stream_of_exactly_the_cap_still_reports_the_cap_as_the_seed_does() -> None:
    rec = Recorder()
    pager = TeleportPager(rec, max_pages=3)
    requests = 0
    while pager.next_params() is not None:
        requests += 1
        pager.on_response(200, page([event({"n": requests})], None if requests == 3 else "c"))
    assert requests == 3
    assert pager.result == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert rec.names == [ev.TELEPORT_EVENTS_PAGE_CAP]


def test_a_stream_shorter_than_the_cap_reports_nothing() -> None:
    rec = Recorder()
    pager = TeleportPager(rec, max_pages=3)
    while pager.next_params() is not None:
        pager.on_response(200, page([event({"n": 1})], None))
    assert pager.result == [{"n": 1}]
    assert rec.names == []


def test_401_raises_and_bad_status_or_shape_is_none() -> None:
    with pytest.raises(SessionExpiredError):
        TeleportPager(Recorder()).on_response(401, b"")
    for status, body, name in [
        (500, b"", ev.TELEPORT_EVENTS_FETCH_FAIL),  # the seed's axios throws on 5xx
        (503, b"", ev.TELEPORT_EVENTS_FETCH_FAIL),
        (403, b"", ev.TELEPORT_EVENTS_BAD_STATUS),
        (429, b"", ev.TELEPORT_EVENTS_BAD_STATUS),
        (200, b'{"data": {}}', ev.TELEPORT_EVENTS_INVALID_SHAPE),
        (200, b"garbage", ev.TELEPORT_EVENTS_INVALID_SHAPE),
    ]:
        rec = Recorder()
        pager = TeleportPager(rec)
        pager.on_response(status, body)
        assert pager.result is None
        assert pager.done
        assert rec.names == [name]


@given(status=st.integers(min_value=100, max_value=599), body=st.binary(max_size=200))
@settings(deadline=None)  # results, not speed: no flaky deadline on a busy machine
def test_pager_never_crashes_or_loops_on_arbitrary_replies(status: int, body: bytes) -> None:
    pager = TeleportPager(Recorder(), max_pages=5)
    steps = 0
    while pager.next_params() is not None and steps < 10:
        steps += 1
        try:
            pager.on_response(status, body)
        except SessionExpiredError:
            assert status == 401
            break
    assert steps <= 5
