"""PROTOCOL.md's append table, row by row, against the real local server.

Every test runs twice (``client_kind``): the blocking and the asyncio client
must produce the same requests, results and diagnostics.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from ingress_logging import RetryPolicy
from ingress_logging import diagnostics as ev


def entry(**extra: Any) -> dict[str, Any]:
    return {"type": "user", "uuid": str(uuid.uuid4()), "message": {"content": "hi"}, **extra}


def puts(srv: Any, n: int) -> list[Any]:
    """The PUTs among the first ``n`` requests (a reply can outrun its record)."""
    return [r for r in recorded(srv, n) if r.method == "PUT"]


def recorded(srv: Any, n: int) -> list[Any]:
    records = srv.wait_for_requests(n, timeout=10)
    assert len(records) == n, records
    return records


def gaps(records: list[Any]) -> list[float]:
    return [b.t - a.t for a, b in itertools.pairwise(records)]


def test_stored_advances_head_and_sends_it_as_last_uuid(client, ingress_server):
    first, second = entry(), entry()
    assert client.append_session_log("s", first, ingress_server.session_url("s")) is True
    assert client.append_session_log("s", second) is True  # url defaults to the host's
    records = puts(ingress_server, 2)
    assert [r.status for r in records] == [201, 200]
    assert records[0].last_uuid is None  # never written or read: header omitted
    assert records[1].last_uuid == first["uuid"]
    assert [e["uuid"] for e in ingress_server.entries("s")] == [first["uuid"], second["uuid"]]


def test_entry_without_uuid_keeps_the_head(client, ingress_server):
    head = entry()
    assert client.append_session_log("s", head)
    assert client.append_session_log("s", {"type": "summary", "summary": "x"})
    assert client.append_session_log("s", entry())
    records = puts(ingress_server, 3)
    assert [r.status for r in records] == [201, 200, 200]  # no 409 round trip
    assert records[2].last_uuid == head["uuid"]


def test_lost_reply_after_commit_is_recognised_without_duplicate(
    client, ingress_server, diagnostics
):
    ingress_server.faults.drop_after_commit_next()
    e = entry()
    assert client.append_session_log("s", e) is True
    records = puts(ingress_server, 2)
    assert [r.status for r in records] == [None, 409]  # dropped, then "already yours"
    assert [x["uuid"] for x in ingress_server.entries("s")] == [e["uuid"]]
    assert ev.SESSION_PERSIST_RECOVERED_FROM_409 in diagnostics.names()
    # the head is the stored entry: the next append chains onto it
    nxt = entry()
    assert client.append_session_log("s", nxt)
    assert puts(ingress_server, 3)[-1].last_uuid == e["uuid"]


def test_foreign_writer_head_is_adopted_and_retried_at_once(
    make_client, ingress_server, diagnostics
):
    # A long backoff would show: the adopt-and-retry must not wait at all.
    client = make_client(retry_policy=RetryPolicy(base_delay=5.0))
    first = entry()
    assert client.append_session_log("s", first)
    ingress_server.faults.foreign_write_next()
    e = entry()
    assert client.append_session_log("s", e) is True
    records = puts(ingress_server, 3)
    foreign_head = ingress_server.entries("s")[1]["uuid"]
    assert [r.status for r in records] == [201, 409, 200]
    assert records[1].last_uuid == first["uuid"]
    assert records[2].last_uuid == foreign_head
    assert records[2].t - records[1].t < 2.0
    assert ev.SESSION_PERSIST_409_ADOPT_SERVER_UUID in diagnostics.names()
    assert [x["uuid"] for x in ingress_server.entries("s")][-1] == e["uuid"]


def test_conflict_without_header_refetches_and_adopts(client, ingress_server, diagnostics):
    first = entry()
    assert client.append_session_log("s", first)
    ingress_server.append_foreign("s")
    foreign_head = ingress_server.head("s")
    ingress_server.faults.omit_conflict_head = True
    e = entry()
    assert client.append_session_log("s", e) is True
    tail = [(r.method, r.status, r.last_uuid) for r in recorded(ingress_server, 4)[1:]]
    assert tail == [
        ("PUT", 409, first["uuid"]),
        ("GET", 200, None),
        ("PUT", 200, foreign_head),
    ]
    assert ev.SESSION_PERSIST_409_ADOPT_SERVER_UUID in diagnostics.names()


def test_conflict_without_header_and_no_head_to_find_fails(client, ingress_server, diagnostics):
    ingress_server.faults.conflict_without_head_next()
    assert client.append_session_log("s", entry()) is False
    assert [(r.method, r.status) for r in recorded(ingress_server, 2)] == [
        ("PUT", 409),
        ("GET", 404),
    ]
    assert diagnostics.names()[-1] == ev.SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION
    assert ingress_server.entries("s") == []


def test_duplicate_in_chain_is_reported_without_burning_attempts(
    client, ingress_server, diagnostics
):
    old, newer = entry(), entry()
    assert client.append_session_log("s", old)
    assert client.append_session_log("s", newer)
    before = len(recorded(ingress_server, 2))
    assert client.append_session_log("s", old) is True  # already in the chain, not at its head
    records = recorded(ingress_server, before + 2)[before:]
    # The 409 names the head the client sent: proof of nothing until the read shows the entry.
    assert [(r.method, r.status, r.last_uuid) for r in records] == [
        ("PUT", 409, newer["uuid"]),
        ("GET", 200, None),
    ]
    assert ev.SESSION_PERSIST_DUPLICATE_ENTRY in diagnostics.names()
    assert [x["uuid"] for x in ingress_server.entries("s")] == [old["uuid"], newer["uuid"]]


def test_duplicate_found_by_the_refetch(client, ingress_server, diagnostics):
    old, newer = entry(), entry()
    assert client.append_session_log("s", old)
    assert client.append_session_log("s", newer)
    ingress_server.faults.omit_conflict_head = True
    assert client.append_session_log("s", old) is True
    assert ev.SESSION_PERSIST_DUPLICATE_ENTRY in diagnostics.names()
    assert len(ingress_server.entries("s")) == 2


def test_unauthorized_fails_at_once(make_client, ingress_server, diagnostics):
    client = make_client(token="not-the-token")
    assert client.append_session_log("s", entry()) is False
    assert [r.status for r in recorded(ingress_server, 1)] == [401]
    assert diagnostics.names() == [ev.SESSION_PERSIST_FAIL_BAD_TOKEN]


def test_no_token_fails_without_a_request(make_client, ingress_server, diagnostics):
    client = make_client(token=None)
    assert client.append_session_log("s", entry()) is False
    assert ingress_server.requests == []
    assert diagnostics.names() == [ev.SESSION_PERSIST_FAIL_JWT_NO_TOKEN]


def test_token_callable_is_asked_per_attempt(make_client, ingress_server):
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return ingress_server.token

    client = make_client(token=token)
    ingress_server.faults.fail_next(2)
    assert client.append_session_log("s", entry())
    assert len(calls) >= 3  # one per PUT at least


def test_token_vanishing_between_attempts_stops_without_a_request(
    make_client, ingress_server, diagnostics
):
    tokens = iter([ingress_server.token, None])  # begin (reused by attempt 1), attempt 2
    client = make_client(token=lambda: next(tokens, None))
    ingress_server.faults.fail_next(1)
    assert client.append_session_log("s", entry()) is False
    assert [r.status for r in recorded(ingress_server, 1)] == [503]
    assert diagnostics.names()[-1] == ev.SESSION_PERSIST_FAIL_JWT_NO_TOKEN


def test_5xx_burst_is_retried_on_the_seeds_schedule(make_client, ingress_server, diagnostics):
    base = 0.02
    client = make_client(retry_policy=RetryPolicy(base_delay=base, max_delay=8.0))
    ingress_server.faults.fail_next(3, status=503)
    assert client.append_session_log("s", entry()) is True
    records = puts(ingress_server, 4)
    assert [r.status for r in records] == [503, 503, 503, 201]
    for n, gap in enumerate(gaps(records), start=1):
        expected = base * 2 ** (n - 1)
        assert expected * 0.9 <= gap < expected + 1.0, (n, gap)
    assert diagnostics.data(ev.SESSION_PERSIST_FAIL_STATUS) == [
        {"status": 503, "attempt": 1},
        {"status": 503, "attempt": 2},
        {"status": 503, "attempt": 3},
    ]


def test_backoff_is_capped_at_max_delay(make_client, ingress_server):
    client = make_client(retry_policy=RetryPolicy(base_delay=0.02, max_delay=0.04))
    ingress_server.faults.fail_next(4, status=500)
    assert client.append_session_log("s", entry()) is True
    observed = gaps(puts(ingress_server, 5))
    for gap, expected in zip(observed, [0.02, 0.04, 0.04, 0.04], strict=True):
        assert expected * 0.9 <= gap < expected + 1.0


def test_retries_exhausted_after_max_attempts(make_client, ingress_server, diagnostics):
    client = make_client(retry_policy=RetryPolicy(max_attempts=3, base_delay=0.001))
    ingress_server.faults.fail_next(5, status=502)
    assert client.append_session_log("s", entry()) is False
    assert [r.status for r in puts(ingress_server, 3)] == [502, 502, 502]
    assert diagnostics.data(ev.SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED) == [{"attempt": 3}]
    assert ingress_server.faults.pending() == 2


@pytest.mark.parametrize("status", [408, 418, 425])
def test_other_4xx_are_transient_as_in_the_seed(client, ingress_server, status):
    ingress_server.faults.fail_next(1, status=status)
    assert client.append_session_log("s", entry()) is True
    assert [r.status for r in puts(ingress_server, 2)] == [status, 201]


@pytest.mark.parametrize("status", [400, 403, 404, 413, 422])
def test_permanent_4xx_are_not_retried(client, ingress_server, diagnostics, status):
    ingress_server.faults.fail_next(1, status=status)
    assert client.append_session_log("s", entry()) is False
    assert [r.status for r in puts(ingress_server, 1)] == [status]
    assert diagnostics.data(ev.SESSION_PERSIST_FAIL_PERMANENT) == [{"status": status}]


def test_a_real_413_from_the_server_is_permanent(make_client, ingress_server_factory, diagnostics):
    srv = ingress_server_factory(max_body_bytes=256)
    client = make_client(token=srv.token, base_api_url=srv.base_url)
    assert client.append_session_log("s", entry(blob="x" * 1000)) is False
    assert [r.status for r in recorded(srv, 1)] == [413]
    assert diagnostics.data(ev.SESSION_PERSIST_FAIL_PERMANENT) == [{"status": 413}]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_honoured(make_client, ingress_server, diagnostics, status):
    client = make_client(retry_policy=RetryPolicy(base_delay=0.001))
    ingress_server.faults.fail_next(1, status=status, retry_after=0.3)
    assert client.append_session_log("s", entry()) is True
    (gap,) = gaps(puts(ingress_server, 2))
    assert gap >= 0.27  # the backoff alone would be 1 ms
    assert diagnostics.data(ev.SESSION_PERSIST_RETRY_AFTER) == [{"status": status, "delay_ms": 300}]


def test_retry_after_is_capped(make_client, ingress_server):
    policy = RetryPolicy(base_delay=0.001, retry_after_cap=0.05)
    client = make_client(retry_policy=policy)
    ingress_server.faults.rate_limit_next(retry_after=30)
    assert client.append_session_log("s", entry()) is True
    (gap,) = gaps(puts(ingress_server, 2))
    assert 0.045 <= gap < 5.0


def test_retry_after_as_http_date(make_client, scripted, diagnostics):
    import email.utils
    import time

    client = make_client(
        token="t",
        base_api_url=scripted.base_url,
        retry_policy=RetryPolicy(base_delay=0.001, retry_after_cap=0.3),
    )
    # a date far ahead is capped, so a parsed date shows up as exactly the cap
    scripted.push(
        429, headers={"Retry-After": email.utils.formatdate(time.time() + 60, usegmt=True)}
    )
    scripted.push(201, b"{}")
    assert client.append_session_log("s", entry(), scripted.session_url("s")) is True
    assert diagnostics.data(ev.SESSION_PERSIST_RETRY_AFTER) == [{"status": 429, "delay_ms": 300}]
    first, second = scripted.seen
    assert second.t - first.t >= 0.27


def test_connection_refused_is_retried_then_exhausted(make_client, ingress_server, diagnostics):
    client = make_client(retry_policy=RetryPolicy(max_attempts=2, base_delay=0.001))
    url = ingress_server.session_url("s")
    ingress_server.stop()
    assert client.append_session_log("s", entry(), url) is False
    assert diagnostics.data(ev.SESSION_PERSIST_FAIL_STATUS) == [{"attempt": 1}, {"attempt": 2}]
    assert diagnostics.data(ev.SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED) == [{"attempt": 2}]


def test_timeout_is_transient_and_the_stored_entry_is_not_duplicated(
    make_client, ingress_server, diagnostics
):
    client = make_client(timeout=0.2, retry_policy=RetryPolicy(max_attempts=3, base_delay=0.001))
    ingress_server.faults.latency = 0.6
    e = entry()
    assert client.append_session_log("s", e) is False  # every attempt timed out
    assert len(diagnostics.data(ev.SESSION_PERSIST_FAIL_STATUS)) == 3
    ingress_server.faults.latency = 0
    ingress_server.wait_for_requests(3, timeout=10)
    # the server stored the first attempt after the client gave up on it
    assert client.append_session_log("s", e) is True
    assert [x["uuid"] for x in ingress_server.entries("s")] == [e["uuid"]]
