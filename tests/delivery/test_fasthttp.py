"""The http.client-backed httpx transport the engine uses by default."""

from __future__ import annotations

import httpx
import pytest

from ingress_logging.delivery._fasthttp import HTTPClientTransport, build_http_client


def test_plain_httpx_calls_work_and_keep_alive_survives_a_server_restart(ingress_server):
    transport = HTTPClientTransport()
    with httpx.Client(transport=transport) as client:
        url = ingress_server.session_url("fh")
        headers = {"Authorization": f"Bearer {ingress_server.token}"}
        r = client.put(url, json={"uuid": "00000000-0000-4000-8000-000000000001"}, headers=headers)
        assert r.status_code in (200, 201)
        assert len(transport._open) == 1
        ingress_server.restart()  # the idle connection is now closed by the server
        r = client.get(url, headers=headers)
        assert r.status_code == 200  # the stale connection was noticed, not used
        assert r.json()["loglines"][0]["uuid"].endswith("0001")
        assert len(transport._open) == 1
    assert transport._open == set()


def test_engine_sees_no_retry_after_a_server_restart_between_entries(ingress_server, make_engine):
    engine = make_engine()
    engine.submit("rs", {"type": "user", "message": "1"})
    assert engine.flush(5)
    ingress_server.restart()
    engine.submit("rs", {"type": "user", "message": "2"})
    assert engine.flush(5)
    assert engine.stats().retried == 0
    assert [e["message"] for e in ingress_server.entries("rs")] == ["1", "2"]


def test_connection_refused_is_an_httpx_connect_error(ingress_server_factory):
    srv = ingress_server_factory()
    url = srv.session_url("x")
    srv.stop()
    with httpx.Client(transport=HTTPClientTransport()) as client, pytest.raises(httpx.ConnectError):
        client.get(url)


def test_proxy_environment_falls_back_to_httpx_default(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    client = build_http_client(4)
    try:
        assert not isinstance(client._transport, HTTPClientTransport)
    finally:
        client.close()
    monkeypatch.delenv("HTTPS_PROXY")
    client = build_http_client(4)
    try:
        assert isinstance(client._transport, HTTPClientTransport)
    finally:
        client.close()
