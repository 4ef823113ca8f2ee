"""``SessionIngressClient.append_many``: several appends of a session in flight.

Against the real local server behind a ``DelayProxy`` (a real round trip
that does not serialise a connection), with the server's own faults at
random positions of the window. Timing is asserted only as an ordering of
events on one monotonic clock (the server records ``t`` per request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress_logging import RetryPolicy, SessionIngressClient
from ingress_logging import diagnostics as ev
from ingress_logging.plugins import new_plugin_manager
from ingress_logging.protocol import AppendOutcome
from ingress_logging.server import IngressServer
from ingress_logging.testing_proxy import DelayProxy
from ingress_logging.testing_reorder import ReorderProxy

from .conftest import Diagnostics, ScriptedServer

FAST = RetryPolicy(max_attempts=30, base_delay=0.001, max_delay=0.01)


def entries(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"type": "user", "uuid": f"{prefix}-{i}", "n": i} for i in range(n)]


@pytest.fixture
def make(diagnostics: Diagnostics) -> Iterator[Callable[..., SessionIngressClient]]:
    made: list[SessionIngressClient] = []

    def factory(base_url: str, token: Any, **kwargs: Any) -> SessionIngressClient:
        kwargs.setdefault("retry_policy", FAST)
        client = SessionIngressClient(
            token,
            base_url,
            diagnostics=diagnostics,
            plugins=new_plugin_manager(load_entrypoints=False),
            **kwargs,
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def test_a_window_of_appends_is_in_flight_at_once(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make: Callable[..., SessionIngressClient],
) -> None:
    rtt = 0.5
    proxy = delay_proxy_factory(ingress_server, rtt=rtt)
    client = make(proxy.base_url, ingress_server.token)
    # A new origin starts at a window of 4 (slow start); each 2xx widens it by one.
    assert client.window_for(proxy.base_url, 8) == 4
    assert all(r.ok for r in client.append_many("warm", entries("warm", 4), window=8))
    assert client.window_for(proxy.base_url, 8) == 8
    ingress_server.clear_requests()
    batch = entries("w", 16)

    results = client.append_many("s", batch, window=8)

    assert [r.outcome for r in results] == [AppendOutcome.STORED] * 16
    assert [e["uuid"] for e in ingress_server.entries("s")] == [e["uuid"] for e in batch]
    puts = ingress_server.requests
    assert len(puts) == 16  # no resends
    assert [r.last_uuid for r in puts] == [None] + [e["uuid"] for e in batch[:-1]]
    # The eighth append reached the server less than a round trip after the first:
    # one at a time, it could only leave after seven replies came back.
    assert puts[7].t - puts[0].t < rtt


def test_window_one_and_a_given_http_client_send_one_at_a_time(
    ingress_server: IngressServer, make: Callable[..., SessionIngressClient]
) -> None:
    scripted_client = httpx.Client()
    try:
        for client in (
            make(ingress_server.base_url, ingress_server.token, http_client=scripted_client),
            make(ingress_server.base_url, ingress_server.token, pipeline=False),
        ):
            ingress_server.clear_requests()
            sid = f"one-{id(client)}"
            results = client.append_many(sid, entries(sid, 3), window=8)
            assert all(r.ok for r in results)
            assert len(ingress_server.requests) == 3
    finally:
        scripted_client.close()


FAULT = st.sampled_from(
    [
        None,
        None,
        503,
        {"status": 429, "retry_after": 0.01},
        "drop",
        "error_after_commit",
        "foreign_write",
    ]
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    faults=st.lists(FAULT, min_size=1, max_size=30),
    n=st.integers(1, 24),
    window=st.integers(2, 8),
)
def test_faults_at_any_window_position_store_each_entry_once_in_order(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make: Callable[..., SessionIngressClient],
    faults: list[Any],
    n: int,
    window: int,
) -> None:
    proxy = delay_proxy_factory(ingress_server, rtt=0.01)
    client = make(proxy.base_url, ingress_server.token)
    sid = f"p{len(ingress_server.requests)}"
    ingress_server.faults.reset()
    ingress_server.faults.script(faults, session_id=sid)
    batch = entries(sid, n)

    results = client.append_many(sid, batch, window=window)

    assert all(r.ok for r in results), results
    assert len(results) == n
    mine = [e["uuid"] for e in ingress_server.entries(sid) if e["uuid"].startswith(f"{sid}-")]
    assert mine == [e["uuid"] for e in batch]


def test_a_summary_without_uuid_goes_alone(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make: Callable[..., SessionIngressClient],
) -> None:
    proxy = delay_proxy_factory(ingress_server, rtt=0.2)
    client = make(proxy.base_url, ingress_server.token)
    batch = [*entries("b", 3), {"type": "summary", "summary": "x"}, *entries("c", 3)]

    results = client.append_many("s", batch, window=8)

    assert all(r.ok for r in results)
    stored = ingress_server.entries("s")
    assert [e.get("uuid") for e in stored] == [e.get("uuid") for e in batch]
    puts = ingress_server.requests
    summary = puts[3]
    assert summary.entry_uuid is None
    # Sent after b-2 was answered, and c-0 only after the summary was answered.
    assert puts[2].t < summary.t < puts[4].t
    assert puts[4].last_uuid == "b-2"


def test_a_reordering_path_falls_back_to_one_at_a_time_and_says_so_once(
    scripted: ScriptedServer,
    make: Callable[..., SessionIngressClient],
    diagnostics: Diagnostics,
) -> None:
    ok: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
    client = make(scripted.base_url, "tok")
    scripted.replies.put(ok)
    assert client.append_session_log("s", {"uuid": "a"})  # head: a
    # b is acknowledged, yet c (sent with Last-Uuid b) is refused naming a: the
    # server handled c before b. d's 409 is collateral; c and d are then resent.
    for reply in [ok, (409, {"x-last-uuid": "a"}, b"{}"), (409, {"x-last-uuid": "a"}, b"{}")]:
        scripted.replies.put(reply)
    for _ in range(6):
        scripted.replies.put(ok)

    results = client.append_many("s", [{"uuid": "b"}, {"uuid": "c"}, {"uuid": "d"}], window=4)
    again = client.append_many("s", [{"uuid": "e"}, {"uuid": "f"}], window=4)

    assert all(r.ok for r in results + again)
    assert client.pipeline_fallbacks == 1
    assert diagnostics.names().count(ev.PIPELINE_REORDERED) == 1
    resent = scripted.seen[4:]
    assert [s.headers.get("Last-Uuid") for s in resent] == ["b", "c", "d", "e"]
    # The next call for this origin takes the one-at-a-time (httpx) path.
    assert [s.headers.get("User-Agent", "")[:12] for s in scripted.seen[6:]] == ["python-httpx"] * 2


def test_a_real_reordering_path_is_detected_in_the_window_and_loses_nothing(
    ingress_server: IngressServer,
    reorder_proxy_factory: Callable[..., ReorderProxy],
    make: Callable[..., SessionIngressClient],
    diagnostics: Diagnostics,
) -> None:
    proxy = reorder_proxy_factory(ingress_server)
    client = make(proxy.base_url, ingress_server.token)
    assert client.append_session_log("s", {"type": "user", "uuid": "a"})  # head: a
    batch = entries("b", 4)

    results = client.append_many("s", batch, window=4)

    assert all(r.ok for r in results)
    assert max(proxy.batches) >= 2  # the path reversed appends written back to back
    assert client.pipeline_fallbacks == 1
    assert diagnostics.names().count(ev.PIPELINE_REORDERED) == 1
    assert client.window_for(proxy.base_url + "/x", 16) == 1
    seen = len(proxy.batches)
    more = entries("c", 3)
    assert all(r.ok for r in client.append_many("s", more, window=4))
    assert proxy.batches[seen:] == [1, 1, 1]  # one at a time from now on
    assert [e["uuid"] for e in ingress_server.entries("s")] == ["a"] + [
        e["uuid"] for e in batch + more
    ]
    assert diagnostics.names().count(ev.PIPELINE_REORDERED) == 1


@pytest.mark.parametrize("older_server", [False, True])
def test_a_reordering_path_is_detected_when_the_409_names_no_head(
    ingress_server_factory: Callable[..., IngressServer],
    reorder_proxy_factory: Callable[..., ReorderProxy],
    make: Callable[..., SessionIngressClient],
    diagnostics: Diagnostics,
    older_server: bool,
) -> None:
    """The refused entry's 409 cannot tell (a new session has no head; an older
    server names none): the evidence comes from its recovery's session read."""
    server = ingress_server_factory()
    server.faults.omit_conflict_head = older_server
    proxy = reorder_proxy_factory(server)
    client = make(proxy.base_url, server.token)
    before: list[dict[str, Any]] = []
    if older_server:
        before = [{"type": "user", "uuid": "a"}]
        assert client.append_session_log("s", before[0])
    batch = entries("b", 2)

    results = client.append_many("s", batch, window=4)

    assert [r.outcome for r in results] == [AppendOutcome.STORED] * 2
    assert proxy.batches[-3:] == [2, 1, 1]  # b-1 then b-0; the read; b-1 again
    refused = [r for r in server.requests if r.status == 409]
    assert [(r.entry_uuid, r.last_uuid) for r in refused] == [("b-1", "b-0")]
    assert [r.method for r in server.requests].count("GET") == 1
    assert client.pipeline_fallbacks == 1
    assert diagnostics.names().count(ev.PIPELINE_REORDERED) == 1
    stored = [e["uuid"] for e in server.entries("s")]
    assert stored == [e["uuid"] for e in before + batch]


def test_plugin_headers_and_a_rotating_token_reach_pipelined_requests(
    scripted: ScriptedServer, diagnostics: Diagnostics
) -> None:
    from ingress_logging import hookimpl

    class Headers:
        @hookimpl
        def ingress_request_headers(self, session_id: str) -> dict[str, str]:
            return {"X-Tenant": f"t-{session_id}"}

    tokens = iter(["tok-1", "tok-2", "tok-3", "tok-4"])
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(Headers())
    client = SessionIngressClient(
        lambda: next(tokens), scripted.base_url, diagnostics=diagnostics, plugins=pm
    )
    try:
        scripted.default = (200, {}, b"{}")
        results = client.append_many("t", entries("t", 4), window=2)
        assert all(r.ok for r in results)
        assert "tok-" not in repr(client)
    finally:
        client.close()
    assert [s.headers["X-Tenant"] for s in scripted.seen] == ["t-t"] * 4
    # The token is asked for each time appends are written: the first two go
    # together, then one more each time a reply frees a place in the window.
    assert [s.headers["Authorization"] for s in scripted.seen] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-3",
    ]
    assert "User-Agent" not in scripted.seen[0].headers  # the pipelined path, not httpx


def test_server_down_fails_each_entry_after_its_attempts(
    make: Callable[..., SessionIngressClient],
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    client = make(
        f"http://127.0.0.1:{dead}",
        "tok",
        retry_policy=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001),
    )
    results = client.append_many("d", entries("d", 3), window=3)
    assert [r.outcome for r in results] == [AppendOutcome.RETRIES_EXHAUSTED] * 3


def test_a_proxy_variable_turns_pipelining_off(
    scripted: ScriptedServer,
    make: Callable[..., SessionIngressClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # not used for this http URL
    client = make(scripted.base_url, "tok")
    scripted.default = (200, {}, b"{}")
    assert all(r.ok for r in client.append_many("s", entries("s", 2), window=4))
    assert [s.headers.get("User-Agent", "")[:12] for s in scripted.seen] == ["python-httpx"] * 2


def test_a_trickling_reply_ends_at_the_deadline(make: Callable[..., SessionIngressClient]) -> None:
    import socket
    import threading
    import time

    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.2):  # one header line every 0.2 s, forever
                try:
                    conn.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        client = make(
            f"http://127.0.0.1:{listener.getsockname()[1]}",
            "tok",
            timeout=1.0,
            retry_policy=RetryPolicy(max_attempts=1),
        )
        started = time.monotonic()
        results = client.append_many("s", entries("s", 2), window=2)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
        thread.join()
    assert [r.outcome for r in results] == [AppendOutcome.RETRIES_EXHAUSTED] * 2
    # Each 0.2 s line would reset a per-read timeout forever; the deadline is total.
    assert elapsed < 10


def test_append_window_hands_a_recovery_back_for_the_step_api(
    ingress_server: IngressServer, make: Callable[..., SessionIngressClient]
) -> None:
    from ingress_logging.protocol import Done, Wait

    client = make(ingress_server.base_url, ingress_server.token)
    ingress_server.faults.script([None, 503], session_id="r")
    batch = entries("r", 5)

    first = client.append_window("r", batch, window=5)

    assert [d.outcome for d in first.done] == [AppendOutcome.STORED]
    pending = first.pending
    assert pending is not None
    assert isinstance(pending.action, Wait)  # the 503's backoff: the caller's to wait out
    action = client.resume(pending)
    while not isinstance(action, Done):
        action = client.advance(pending)
    assert action.ok
    rest = client.append_window("r", batch[2:], window=5)
    assert rest.pending is None
    assert [d.ok for d in rest.done] == [True] * 3
    assert [e["uuid"] for e in ingress_server.entries("r")] == [e["uuid"] for e in batch]


def test_chain_parent_makes_each_parent_the_last_uuid_sent(
    ingress_server: IngressServer, make: Callable[..., SessionIngressClient]
) -> None:
    client = make(ingress_server.base_url, ingress_server.token)
    batch = [dict(e, parentUuid="stale") for e in entries("c", 4)]

    result = client.append_window("c", batch, window=4, chain_parent=True)

    assert result.pending is None
    stored = ingress_server.entries("c")
    assert [e["parentUuid"] for e in stored] == [None, "c-0", "c-1", "c-2"]
    assert batch[0]["parentUuid"] == "stale"  # the caller's dicts are not changed


def test_an_outage_costs_one_window_more_than_one_at_a_time(
    ingress_server: IngressServer, make: Callable[..., SessionIngressClient]
) -> None:
    ingress_server.faults.fail_share(1.0, status=503)
    client = make(
        ingress_server.base_url,
        ingress_server.token,
        retry_policy=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001),
    )
    results = client.append_many("o", entries("o", 10), window=8)
    assert [r.outcome for r in results] == [AppendOutcome.RETRIES_EXHAUSTED] * 10
    # One at a time: 10 entries x 2 attempts. Pipelined, only the first window's
    # three collateral requests come on top (a new origin starts at a window of
    # 4): after a failure the window is 1.
    assert len(ingress_server.requests) == 10 * 2 + 3
    assert client.window_for(ingress_server.base_url, 8) == 1
    again = client.append_many("o2", entries("o2", 3), window=8)
    assert not any(r.ok for r in again)
    assert len(ingress_server.requests) == 10 * 2 + 3 + 3 * 2  # the next call starts at 1 too


@pytest.mark.parametrize("window", [1, 8])
def test_bad_input_raises_before_any_request(
    ingress_server: IngressServer, make: Callable[..., SessionIngressClient], window: int
) -> None:
    client = make(ingress_server.base_url, ingress_server.token)
    with pytest.raises(TypeError):
        client.append_many("b", [{"uuid": "ok"}, {"uuid": "bad", "x": object()}], window=window)
    assert ingress_server.requests == []
