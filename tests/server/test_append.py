"""PUT rules: auth, status codes, the Last-Uuid chain, duplicates, keep-alive."""

from __future__ import annotations

import http.client
import json

import httpx

from ingress_logging.server import IngressServer


def _put(
    client: httpx.Client,
    srv: IngressServer,
    sid: str,
    entry: dict[str, object],
    last_uuid: str | None = None,
    token: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token if token is not None else srv.token}"}
    if last_uuid is not None:
        headers["Last-Uuid"] = last_uuid
    return client.put(srv.session_url(sid), json=entry, headers=headers)


def test_put_without_bearer_is_401_and_stores_nothing(ingress_server, client):
    r = client.put(ingress_server.session_url("s"), json={"uuid": "a"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    assert not ingress_server.store.exists("s")


def test_put_with_wrong_bearer_is_401(ingress_server, client):
    r = _put(client, ingress_server, "s", {"uuid": "a"}, token="not-the-token")
    assert r.status_code == 401
    r = _put(client, ingress_server, "s", {"uuid": "a"}, token=ingress_server.oauth_token)
    assert r.status_code == 401
    assert ingress_server.entries("s") == []


def test_every_401_names_the_bearer_scheme(ingress_server, client):
    """RFC 9110: a 401 carries WWW-Authenticate, so clients know what to send."""
    sid = "s"
    replies = [
        client.put(ingress_server.session_url(sid), json={"uuid": "a"}),
        client.get(ingress_server.session_url(sid), headers={"Authorization": "Bearer no"}),
        client.get(ingress_server.teleport_url(sid), headers={"Authorization": "Basic x"}),
        client.get(f"{ingress_server.base_url}/_admin/faults"),
    ]
    assert [r.status_code for r in replies] == [401] * 4
    for r in replies:
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert ingress_server.token not in r.headers["www-authenticate"]


def test_401_body_never_echoes_the_token(ingress_server, client):
    r = _put(client, ingress_server, "s", {"uuid": "a"}, token="secret-looking-token-123")
    assert r.status_code == 401
    assert "secret-looking-token-123" not in r.text


def test_first_entry_is_201_then_200(ingress_server, client):
    assert _put(client, ingress_server, "s", {"uuid": "a"}).status_code == 201
    assert _put(client, ingress_server, "s", {"uuid": "b"}, "a").status_code == 200
    assert ingress_server.head("s") == "b"


def test_stale_last_uuid_is_409_naming_the_head(ingress_server, client):
    _put(client, ingress_server, "s", {"uuid": "a"})
    _put(client, ingress_server, "s", {"uuid": "b"}, "a")
    r = _put(client, ingress_server, "s", {"uuid": "c"}, "a")
    assert r.status_code == 409
    assert r.headers["x-last-uuid"] == "b"
    assert [e["uuid"] for e in ingress_server.entries("s")] == ["a", "b"]


def test_absent_last_uuid_is_refused_once_the_session_has_a_head(ingress_server, client):
    _put(client, ingress_server, "s", {"uuid": "a"})
    r = _put(client, ingress_server, "s", {"uuid": "b"})
    assert r.status_code == 409
    assert r.headers["x-last-uuid"] == "a"


def test_absent_last_uuid_is_accepted_while_no_entry_is_chained(ingress_server, client):
    assert _put(client, ingress_server, "s", {"type": "summary"}).status_code == 201
    assert _put(client, ingress_server, "s", {"type": "tag"}).status_code == 200
    assert _put(client, ingress_server, "s", {"uuid": "a"}).status_code == 200
    assert ingress_server.head("s") == "a"


def test_last_uuid_for_a_session_without_head_is_409_without_header(ingress_server, client):
    r = _put(client, ingress_server, "s", {"uuid": "b"}, "a")
    assert r.status_code == 409
    assert "x-last-uuid" not in r.headers
    assert not ingress_server.store.exists("s")


def test_a_uuid_already_in_the_session_is_never_stored_twice(ingress_server, client):
    _put(client, ingress_server, "s", {"uuid": "a"})
    _put(client, ingress_server, "s", {"uuid": "b"}, "a")
    again_head = _put(client, ingress_server, "s", {"uuid": "b"}, "a")  # lost-response retry
    again_old = _put(client, ingress_server, "s", {"uuid": "a"}, "b")  # old uuid, right head
    assert (again_head.status_code, again_head.headers["x-last-uuid"]) == (409, "b")
    assert (again_old.status_code, again_old.headers["x-last-uuid"]) == (409, "b")
    assert [e["uuid"] for e in ingress_server.entries("s")] == ["a", "b"]


def test_the_same_uuid_may_live_in_two_sessions(ingress_server, client):
    assert _put(client, ingress_server, "s1", {"uuid": "a"}).status_code == 201
    assert _put(client, ingress_server, "s2", {"uuid": "a"}).status_code == 201


def test_entries_without_uuid_are_appended_but_never_become_head(ingress_server, client):
    _put(client, ingress_server, "s", {"uuid": "a"})
    r = _put(client, ingress_server, "s", {"type": "summary", "leafUuid": "a"}, "a")
    assert r.status_code == 200
    assert ingress_server.head("s") == "a"
    assert _put(client, ingress_server, "s", {"uuid": "b"}, "a").status_code == 200
    assert [e.get("uuid") for e in ingress_server.entries("s")] == ["a", None, "b"]


def test_stored_entry_is_returned_exactly_as_sent(ingress_server, client):
    entry = {"uuid": "a", "message": {"content": "héllo \u2603", "n": [1, 2.5, None, True]}}
    _put(client, ingress_server, "s", entry)
    assert ingress_server.entries("s") == [entry]


def test_requests_record_method_session_last_uuid_status_and_time(ingress_server, client):
    _put(client, ingress_server, "s", {"uuid": "a"})
    _put(client, ingress_server, "s", {"uuid": "b"}, "zzz")
    first, second = ingress_server.requests
    assert (first.method, first.session_id, first.last_uuid, first.status) == (
        "PUT",
        "s",
        None,
        201,
    )
    assert (second.last_uuid, second.status, second.entry_uuid) == ("zzz", 409, "b")
    assert first.t <= second.t


def test_keep_alive_serves_many_requests_on_one_connection(ingress_server):
    conn = http.client.HTTPConnection("127.0.0.1", ingress_server.port, timeout=10)
    try:
        headers = {
            "Authorization": f"Bearer {ingress_server.token}",
            "Content-Type": "application/json",
        }
        conn.request("PUT", "/v1/session_ingress/session/k", json.dumps({"uuid": "a"}), headers)
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", "/v1/session_ingress/session/k", headers=headers)
        second = conn.getresponse()
        body = json.loads(second.read())
        assert (first.status, second.status) == (201, 200)
        assert body == {"loglines": [{"uuid": "a"}]}
        assert sock is not None
        assert conn.sock is sock  # not reconnected: the server kept the connection open
    finally:
        conn.close()
