"""The team-server routes over real sockets: session listing and deletion,
incremental reads, named tokens and their scopes, health, metrics, access log,
retention. Run on each store (see conftest)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from ingress_logging.server import IngressServer

SESSIONS = "/v1/session_ingress/sessions"


def _put(client, srv, sid, uuid, last=None, token=None):
    headers = {"Authorization": f"Bearer {token or srv.token}"}
    if last is not None:
        headers["Last-Uuid"] = last
    return client.put(srv.session_url(sid), json={"type": "user", "uuid": uuid}, headers=headers)


def test_sessions_are_listed_newest_first_with_counts_and_pages(ingress_server, client, auth):
    for sid in ("run-1", "run-2", "other", "run-3"):
        assert _put(client, ingress_server, sid, "a").status_code == 201
    assert _put(client, ingress_server, "run-1", "b", "a").status_code == 200
    r = client.get(
        ingress_server.base_url + SESSIONS, params={"prefix": "run-", "limit": 2}, headers=auth
    )
    assert r.status_code == 200
    body = r.json()
    assert [s["id"] for s in body["sessions"]] == ["run-1", "run-3"]
    first = body["sessions"][0]
    assert first["entries"] == 2
    assert first["first_activity"] <= first["last_activity"]
    assert first["last_activity"].endswith("Z")
    nxt = client.get(
        ingress_server.base_url + SESSIONS,
        params={"prefix": "run-", "limit": 2, "cursor": body["next_cursor"]},
        headers=auth,
    ).json()
    assert [s["id"] for s in nxt["sessions"]] == ["run-2"]
    assert nxt["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "cursor=bogus", "prefix=" + "p" * 300])
def test_a_bad_listing_query_is_a_400(ingress_server, client, auth, query):
    r = client.get(f"{ingress_server.base_url}{SESSIONS}?{query}", headers=auth)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_read_after_an_entry_returns_only_the_newer_ones(ingress_server, client, auth):
    last = None
    for u in ("a", "b", "c"):
        _put(client, ingress_server, "s", u, last)
        last = u
    url = ingress_server.session_url("s")
    r = client.get(url, params={"after": "a"}, headers=auth)
    assert [e["uuid"] for e in r.json()["loglines"]] == ["b", "c"]
    assert client.get(url, params={"after": "c"}, headers=auth).json() == {"loglines": []}
    unknown = client.get(url, params={"after": "zz"}, headers=auth)
    assert unknown.status_code == 400


def test_delete_needs_the_admin_scope(ingress_server, client, auth):
    _put(client, ingress_server, "s", "a")
    appender = ingress_server.store.create_token("ci", "append")
    r = client.delete(
        ingress_server.session_url("s"), headers={"Authorization": f"Bearer {appender}"}
    )
    assert r.status_code == 403
    assert ingress_server.entries("s") != []
    admin = ingress_server.store.create_token("ops", "admin")
    r = client.delete(ingress_server.session_url("s"), headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200
    assert ingress_server.entries("s") == []
    assert client.get(ingress_server.session_url("s"), headers=auth).status_code == 404
    again = client.delete(ingress_server.session_url("s"), headers=auth)
    assert again.status_code == 404


def test_named_tokens_carry_their_scope(ingress_server, client):
    append = ingress_server.store.create_token("writer", "append")
    read = ingress_server.store.create_token("reader", "read")
    assert _put(client, ingress_server, "s", "a", token=append).status_code == 201
    assert _put(client, ingress_server, "s", "b", "a", token=read).status_code == 403
    as_reader = {"Authorization": f"Bearer {read}"}
    as_writer = {"Authorization": f"Bearer {append}"}
    assert client.get(ingress_server.session_url("s"), headers=as_reader).status_code == 200
    assert client.get(ingress_server.session_url("s"), headers=as_writer).status_code == 403
    listing = client.get(ingress_server.base_url + SESSIONS, headers=as_reader)
    assert [s["id"] for s in listing.json()["sessions"]] == ["s"]
    ingress_server.store.revoke_token("writer")
    revoked = _put(client, ingress_server, "s", "b", "a", token=append)
    assert revoked.status_code == 401
    assert "WWW-Authenticate" in revoked.headers


def test_healthz_reports_the_store(ingress_server, client):
    r = client.get(ingress_server.base_url + "/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    ingress_server.store.close()  # the store stops answering
    r = client.get(ingress_server.base_url + "/healthz")
    assert (r.status_code, r.json()) == (503, {"status": "unavailable"})


def test_metrics_count_appends_conflicts_latency_and_store_errors(ingress_server, client):
    _put(client, ingress_server, "s", "a")
    _put(client, ingress_server, "s", "b", "a")
    _put(client, ingress_server, "s", "c", "stale")
    ingress_server.store.close()
    assert _put(client, ingress_server, "s", "d", "b").status_code == 503
    text = client.get(ingress_server.base_url + "/metrics").text
    lines = set(text.splitlines())
    assert 'ingress_appends_total{status="201"} 1' in lines
    assert 'ingress_appends_total{status="200"} 1' in lines
    assert 'ingress_appends_total{status="409"} 1' in lines
    assert 'ingress_appends_total{status="503"} 1' in lines
    assert "ingress_conflicts_total 1" in lines
    assert "ingress_store_errors_total 1" in lines
    assert 'ingress_request_duration_seconds_bucket{le="+Inf"} 4' in lines
    assert "ingress_request_duration_seconds_count 4" in lines


def test_the_access_log_is_one_json_line_per_request_without_secrets(
    ingress_server_factory, client, caplog
):
    srv = ingress_server_factory(access_log=True)
    secret_body = "do-not-log-this-body"
    caplog.set_level(logging.INFO, logger="ingress_logging.server.access")
    r = client.put(
        srv.session_url("s"),
        json={"uuid": "a", "text": secret_body},
        headers={"Authorization": f"Bearer {srv.token}"},
    )
    assert r.status_code == 201
    client.get(srv.session_url("s"), headers={"Authorization": "Bearer wrong-token"})
    lines = [rec.getMessage() for rec in caplog.records if rec.name.endswith(".access")]
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert (first["method"], first["status"]) == ("PUT", 201)
    assert first["path"] == "/v1/session_ingress/session/s"
    assert second["status"] == 401
    assert first["duration_ms"] >= 0
    text = "\n".join(lines)
    assert srv.token not in text
    assert "wrong-token" not in text
    assert secret_body not in text


def test_retention_removes_idle_sessions(ingress_server_factory, client, wait_for, store_db):
    srv: IngressServer = ingress_server_factory(retention=0.05, db=store_db)
    _put(client, srv, "old", "a")
    assert wait_for(lambda: not srv.store.exists("old"), timeout=10)
    assert srv.store.count_events() == 0


def test_a_named_token_alone_serves_without_a_dev_token(ingress_server, client):
    admin = ingress_server.store.create_token("only", "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    r = client.post(
        ingress_server.base_url + "/_admin/faults", json={"latency": 0}, headers=headers
    )
    assert r.status_code == 200


def test_the_app_mounts_in_another_asgi_server_without_the_drop_hook():
    """IngressApp is plain ASGI: driven by hand here, as any server would."""
    import asyncio

    from ingress_logging.server._asgi import IngressApp
    from ingress_logging.server._faults import FaultInjector
    from ingress_logging.server._state import ServerState
    from ingress_logging.server.store import open_store

    store = open_store(":memory:")
    app = IngressApp(
        ServerState(
            store=store,
            faults=FaultInjector(),
            token="t",
            oauth_token="t",
            org_uuid=None,
            max_body_bytes=1024,
            record=None,
        )
    )
    sent: list[dict] = []

    async def call(method, path, body=b""):
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"authorization", b"Bearer t"), (b"content-type", b"application/json")],
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(call("PUT", "/v1/session_ingress/session/m", b'{"uuid": "a"}'))
    assert sent[0]["status"] == 201
    assert json.loads(store.loglines("m")[0]) == {"uuid": "a"}
    store.close()


def test_client_library_reads_incrementally_unaffected(ingress_server, client, auth):
    """A plain read (no after=) still returns the whole session."""
    _put(client, ingress_server, "s", "a")
    r = client.get(ingress_server.session_url("s"), headers=auth)
    assert r.json() == {"loglines": [{"type": "user", "uuid": "a"}]}
    assert isinstance(r, httpx.Response)


def test_https_with_a_certificate_and_key(ingress_server_factory, tmp_path):
    """--certfile/--keyfile: the server speaks TLS; a client trusting the CA appends."""
    import ssl

    import trustme

    from ingress_logging.server._serve import tls_context

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    srv = ingress_server_factory(ssl_context=tls_context(str(certfile), str(keyfile)))
    assert srv.base_url.startswith("https://")
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    with httpx.Client(verify=trust) as tls:
        r = tls.put(
            srv.session_url("s"),
            json={"uuid": "a"},
            headers={"Authorization": f"Bearer {srv.token}"},
        )
        assert r.status_code == 201
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port is refused
        httpx.get(srv.base_url.replace("https", "http") + "/healthz", timeout=5)


def test_a_bad_certificate_file_is_named(tmp_path):
    from ingress_logging.errors import ConfigError
    from ingress_logging.server._serve import tls_context

    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"nope\.pem"):
        tls_context(missing, None)


def test_metrics_of_one_worker_among_several_label_every_sample():
    from ingress_logging.server._metrics import Metrics

    metrics = Metrics(worker=3)
    metrics.observe("append", 201, 0.002)
    metrics.batch(1)
    samples = [line for line in metrics.render().splitlines() if not line.startswith("#")]
    assert samples
    assert all('worker="3"' in line for line in samples)
    assert 'ingress_appends_total{status="201",worker="3"} 1' in samples
    assert 'ingress_conflicts_total{worker="3"} 0' in samples
    plain = [line for line in Metrics().render().splitlines() if not line.startswith("#")]
    assert not any("worker" in line for line in plain)  # one process: no label
