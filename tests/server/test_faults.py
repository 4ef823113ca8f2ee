"""Every fault switch, observed from a client over real sockets."""

from __future__ import annotations

import random
import time

import httpx
import pytest

from ingress_logging.server import FaultInjector, IngressServer


def _put(client, srv: IngressServer, sid: str, uuid: str, last: str | None = None):
    headers = {"Authorization": f"Bearer {srv.token}"}
    if last is not None:
        headers["Last-Uuid"] = last
    return client.put(srv.session_url(sid), json={"uuid": uuid}, headers=headers)


def test_faults_are_off_by_default(ingress_server, client):
    statuses = [
        _put(client, ingress_server, "s", f"u{i}", f"u{i - 1}" if i else None).status_code
        for i in range(20)
    ]
    assert statuses == [201] + [200] * 19
    assert all(r.fault is None for r in ingress_server.requests)


def test_latency_delays_every_request(ingress_server, client, auth):
    ingress_server.faults.latency = 0.05
    start = time.monotonic()
    _put(client, ingress_server, "s", "a")
    client.get(ingress_server.session_url("s"), headers=auth)
    assert time.monotonic() - start >= 0.1
    ingress_server.faults.latency = 0
    assert ingress_server.entries("s") == [{"uuid": "a"}]


def test_fail_share_is_seeded_and_reproducible(ingress_server, client):
    ingress_server.faults.fail_share(0.5, status=502, seed=7)
    statuses = [_put(client, ingress_server, f"s{i}", "a").status_code for i in range(30)]
    rng = random.Random(7)
    expected = [502 if rng.random() < 0.5 else 201 for _ in range(30)]
    assert statuses == expected
    assert 0 < statuses.count(502) < 30
    stored = sum(1 for i in range(30) if ingress_server.entries(f"s{i}"))
    assert stored == statuses.count(201)


def test_scripted_sequence_is_consumed_in_order(ingress_server, client):
    ingress_server.faults.script([503, 500, None, 502])
    statuses = [_put(client, ingress_server, f"s{i}", "a").status_code for i in range(5)]
    assert statuses == [503, 500, 201, 502, 201]
    assert ingress_server.faults.pending() == 0
    faults = [r.fault for r in ingress_server.requests]
    assert faults == ["status_503", "status_500", "ok", "status_502", None]


def test_fail_next_counts_only_the_given_session(ingress_server, client):
    ingress_server.faults.fail_next(2, status=503, session_id="victim")
    assert _put(client, ingress_server, "other", "a").status_code == 201
    assert _put(client, ingress_server, "victim", "a").status_code == 503
    assert _put(client, ingress_server, "other", "b", "a").status_code == 200
    assert _put(client, ingress_server, "victim", "a").status_code == 503
    assert _put(client, ingress_server, "victim", "a").status_code == 201


def test_faults_do_not_mask_or_consume_on_bad_requests(ingress_server, client):
    ingress_server.faults.fail_next(1)
    bad = client.put(ingress_server.session_url("s"), json={"uuid": "a"})  # no token
    assert bad.status_code == 401
    assert ingress_server.faults.pending() == 1
    assert _put(client, ingress_server, "s", "a").status_code == 503


def test_rate_limit_sends_retry_after(ingress_server, client):
    ingress_server.faults.rate_limit_next(1, retry_after=2)
    ingress_server.faults.rate_limit_next(1, retry_after=0.01)
    first = _put(client, ingress_server, "s", "a")
    second = _put(client, ingress_server, "s", "a")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
    assert (second.status_code, second.headers["Retry-After"]) == (429, "0.01")
    assert first.json()["error"]["type"] == "rate_limit_error"
    assert _put(client, ingress_server, "s", "a").status_code == 201


def test_drop_after_commit_stores_then_closes_without_reply(ingress_server, client):
    _put(client, ingress_server, "s", "a")
    ingress_server.faults.drop_after_commit_next()
    with pytest.raises(httpx.RemoteProtocolError):
        _put(client, ingress_server, "s", "b", "a")
    assert ingress_server.head("s") == "b"  # committed before the drop
    assert ingress_server.requests[-1].status is None
    assert ingress_server.requests[-1].fault == "drop_after_commit"
    retry = _put(client, ingress_server, "s", "b", "a")  # the client's retry
    assert (retry.status_code, retry.headers["x-last-uuid"]) == (409, "b")
    assert [e["uuid"] for e in ingress_server.entries("s")] == ["a", "b"]


def test_error_after_commit_stores_then_replies_500(ingress_server, client):
    ingress_server.faults.error_after_commit_next()
    r = _put(client, ingress_server, "s", "a")
    assert r.status_code == 500
    assert ingress_server.entries("s") == [{"uuid": "a"}]


def test_conflict_without_head_stores_nothing_and_omits_the_header(ingress_server, client):
    _put(client, ingress_server, "s", "a")
    ingress_server.faults.conflict_without_head_next()
    r = _put(client, ingress_server, "s", "b", "a")
    assert r.status_code == 409
    assert "x-last-uuid" not in r.headers
    assert _put(client, ingress_server, "s", "b", "a").status_code == 200


def test_omit_conflict_head_behaves_like_an_older_server(ingress_server, client):
    _put(client, ingress_server, "s", "a")
    ingress_server.faults.omit_conflict_head = True
    stale = _put(client, ingress_server, "s", "b", "stale")
    assert stale.status_code == 409
    assert "x-last-uuid" not in stale.headers
    assert _put(client, ingress_server, "s", "b", "a").status_code == 200


def test_foreign_writer_moves_the_head_before_the_request(ingress_server, client):
    _put(client, ingress_server, "s", "a")
    ingress_server.faults.foreign_write_next(session_id="s")
    r = _put(client, ingress_server, "s", "b", "a")
    assert r.status_code == 409
    foreign = ingress_server.head("s")
    assert foreign not in ("a", "b")
    assert r.headers["x-last-uuid"] == foreign
    assert _put(client, ingress_server, "s", "b", foreign).status_code == 200
    entries = ingress_server.entries("s")
    assert [e["uuid"] for e in entries] == ["a", foreign, "b"]
    assert entries[1]["parentUuid"] == "a"


def test_get_faults_apply_to_reads(ingress_server, client, auth):
    _put(client, ingress_server, "s", "a")
    ingress_server.faults.fail_next(1, status=500, method="GET")
    assert _put(client, ingress_server, "s", "b", "a").status_code == 200  # PUT unaffected
    assert client.get(ingress_server.session_url("s"), headers=auth).status_code == 500
    assert client.get(ingress_server.session_url("s"), headers=auth).status_code == 200


def test_admin_endpoint_switches_faults_at_runtime(ingress_server, client, auth):
    url = ingress_server.base_url + "/_admin/faults"
    assert client.post(url, json={"fail_next": {"n": 1}}).status_code == 401
    r = client.post(
        url,
        json={"fail_next": {"n": 1, "status": 504}, "script": ["drop"], "latency": 0},
        headers=auth,
    )
    assert r.status_code == 200
    assert [p["fault"] for p in r.json()["pending"]] == ["status_504", "drop_after_commit"]
    assert _put(client, ingress_server, "s", "a").status_code == 504
    with pytest.raises(httpx.RemoteProtocolError):
        _put(client, ingress_server, "s", "a")
    assert ingress_server.entries("s") == [{"uuid": "a"}]
    client.post(url, json={"fail_share": {"share": 1.0, "status": 503}}, headers=auth)
    assert _put(client, ingress_server, "s", "b", "a").status_code == 503
    assert client.delete(url, headers=auth).json()["fail_share"] is None
    assert _put(client, ingress_server, "s", "b", "a").status_code == 200
    assert client.get(url, headers=auth).json()["pending"] == []
    assert all(r.path != "/_admin/faults" for r in ingress_server.requests)


def test_faults_given_at_construction(ingress_server_factory, client):
    srv = ingress_server_factory(faults={"script": [503]})
    assert _put(client, srv, "s", "a").status_code == 503
    assert _put(client, srv, "s", "a").status_code == 201


@pytest.mark.parametrize(
    "spec",
    [
        {"nope": 1},
        {"latency": -1},
        {"latency": "1"},
        {"fail_next": {"n": 1, "status": 200}},
        {"fail_next": {"bogus": 1}},
        {"fail_share": {"share": 2}},
        {"script": ["explode"]},
        {"script": [True]},
        {"reset": "yes"},
        {"rate_limit_next": {"method": "DELETE"}},
        {"omit_conflict_head": 1},
        {"fail_next": {"n": 10**11}},  # would queue 10^11 steps: refused, not a hang
        {"drop_after_commit_next": {"n": 10**7}},
        {"fail_share": {"status": 503}},  # the share itself is required
        {"fail_share": {"share": 0.5, "seed": [1]}},
        {"script": {"method": "PUT"}},  # the steps are required
        {"script": "drop"},
        {"reset": True, "fail_next": {"n": 2}, "script": [503, "explode"]},
    ],
)
def test_bad_fault_specs_raise_and_change_nothing(spec):
    faults = FaultInjector()
    faults.fail_next(1)
    with pytest.raises(ValueError):
        faults.configure(spec)
    assert faults.pending() == 1
    assert faults.snapshot()["latency"] == 0.0


def test_a_spec_is_applied_in_its_documented_order_whatever_the_key_order():
    faults = FaultInjector()
    faults.fail_next(3)
    faults.configure(
        {
            "script": ["drop"],
            "fail_share": None,
            "foreign_write_next": {"session_id": "s"},
            "fail_next": {"status": 502},
            "reset": True,
            "latency": 0.5,
        }
    )
    snap = faults.snapshot()
    assert snap["latency"] == 0.5
    assert snap["fail_share"] is None
    assert [(p["fault"], p["session_id"]) for p in snap["pending"]] == [
        ("status_502", None),
        ("foreign_write", "s"),
        ("drop_after_commit", None),
    ]


def test_drop_sends_zero_response_bytes(ingress_server):
    import socket

    body = b'{"uuid": "a"}'
    request = (
        f"PUT /v1/session_ingress/session/raw HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ingress_server.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    ingress_server.faults.drop_after_commit_next()
    with socket.create_connection(("127.0.0.1", ingress_server.port), timeout=10) as sock:
        sock.sendall(request)
        assert sock.recv(1024) == b""  # orderly close, not one byte of reply
    assert ingress_server.entries("raw") == [{"uuid": "a"}]


def test_stop_cuts_an_injected_latency_short(ingress_server, client, wait_for):
    import threading

    ingress_server.faults.latency = 60
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(_put(client, ingress_server, "s", "a").status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: ingress_server.open_connections() > 0, what="the request in flight")
    started = time.monotonic()
    ingress_server.stop()
    caller.join(10)
    assert time.monotonic() - started < 5
    assert not caller.is_alive()
    assert len(outcome) == 1
