"""GET rules: loglines, 404, after_last_compact, the OAuth read, teleport events."""

from __future__ import annotations

import uuid

import pytest

from ingress_logging.server import IngressServer


def _chain(srv: IngressServer, sid: str, entries: list[dict[str, object]]) -> None:
    """Store entries directly (the chain rules are tested in test_append)."""
    for entry in entries:
        srv.append_foreign(sid, entry)


def test_read_returns_loglines_in_order(ingress_server, client, auth):
    entries = [{"uuid": f"u{i}", "n": i} for i in range(5)]
    _chain(ingress_server, "s", entries)
    r = client.get(ingress_server.session_url("s"), headers=auth)
    assert r.status_code == 200
    assert [e["n"] for e in r.json()["loglines"]] == [0, 1, 2, 3, 4]


def test_read_of_unknown_session_is_404(ingress_server, client, auth):
    r = client.get(ingress_server.session_url("never-written"), headers=auth)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_read_without_or_with_wrong_bearer_is_401(ingress_server, client):
    _chain(ingress_server, "s", [{"uuid": "a"}])
    assert client.get(ingress_server.session_url("s")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert client.get(ingress_server.session_url("s"), headers=bad).status_code == 401


def test_after_last_compact_starts_at_the_last_boundary(ingress_server, client, auth):
    boundary = {"type": "system", "subtype": "compact_boundary"}
    _chain(
        ingress_server,
        "s",
        [
            {"uuid": "a"},
            {**boundary, "uuid": "b1"},
            {"uuid": "c"},
            {**boundary, "uuid": "b2"},
            {"uuid": "d", "isCompactSummary": True},
            {"type": "summary"},
        ],
    )
    url = ingress_server.session_url("s")
    r = client.get(url, headers=auth, params={"after_last_compact": "true"})
    assert [e.get("uuid") for e in r.json()["loglines"]] == ["b2", "d", None]
    full = client.get(url, headers=auth, params={"after_last_compact": "false"})
    assert len(full.json()["loglines"]) == 6


def test_after_last_compact_without_boundary_returns_everything(ingress_server, client, auth):
    _chain(ingress_server, "s", [{"uuid": "a"}, {"uuid": "b"}])
    url = ingress_server.session_url("s")
    r = client.get(url, headers=auth, params={"after_last_compact": "true"})
    assert [e["uuid"] for e in r.json()["loglines"]] == ["a", "b"]


def test_oauth_read_needs_the_org_header(ingress_server, client, oauth):
    _chain(ingress_server, "s", [{"uuid": "a"}])
    url = ingress_server.session_url("s")
    assert client.get(url, headers=oauth).json() == {"loglines": [{"uuid": "a"}]}
    no_org = {"Authorization": oauth["Authorization"]}
    assert client.get(url, headers=no_org).status_code == 403
    wrong_org = {**oauth, "x-organization-uuid": "00000000-0000-0000-0000-000000000000"}
    assert client.get(url, headers=wrong_org).status_code == 403


def _teleport(client, srv, sid, headers, **params):
    return client.get(srv.teleport_url(sid), headers=headers, params=params)


def test_teleport_events_page_through_every_entry(ingress_server, client, oauth):
    entries = [{"uuid": f"u{i}", "type": "user"} for i in range(7)]
    _chain(ingress_server, "s", entries)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        r = _teleport(client, ingress_server, "s", oauth, **params)
        assert r.status_code == 200
        body = r.json()
        pages += 1
        assert len(body["data"]) <= 3
        seen.extend(body["data"])
        cursor = body.get("next_cursor")
        if cursor is None:
            assert "next_cursor" not in body
            break
    assert pages == 3
    assert [e["payload"]["uuid"] for e in seen] == [f"u{i}" for i in range(7)]
    assert set(seen[0]) == {"event_id", "event_type", "is_compaction", "payload", "created_at"}
    assert len({e["event_id"] for e in seen}) == 7
    assert all(e["event_type"] == "user" and e["is_compaction"] is False for e in seen)


def test_teleport_marks_compaction_boundaries(ingress_server, client, oauth):
    _chain(ingress_server, "s", [{"type": "system", "subtype": "compact_boundary", "uuid": "b"}])
    event = _teleport(client, ingress_server, "s", oauth).json()["data"][0]
    assert (event["event_type"], event["is_compaction"]) == ("system", True)


def test_teleport_page_is_capped_at_1000(ingress_server, client, oauth):
    for i in range(1001):
        ingress_server.store.add_event("s", {"i": i})
    body = _teleport(client, ingress_server, "s", oauth, limit=5000).json()
    assert len(body["data"]) == 1000
    rest = _teleport(client, ingress_server, "s", oauth, cursor=body["next_cursor"]).json()
    assert [e["payload"]["i"] for e in rest["data"]] == [1000]
    assert "next_cursor" not in rest


def test_teleport_unknown_session_is_404(ingress_server, client, oauth):
    assert _teleport(client, ingress_server, "nope", oauth).status_code == 404


def test_teleport_needs_oauth_not_the_ingress_token(ingress_server, client, auth, oauth):
    _chain(ingress_server, "s", [{"uuid": "a"}])
    assert _teleport(client, ingress_server, "s", auth).status_code == 401
    no_org = {"Authorization": oauth["Authorization"]}
    assert _teleport(client, ingress_server, "s", no_org).status_code == 403


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "x"}, {"cursor": "not-ours!"}])
def test_teleport_bad_query_is_400(ingress_server, client, oauth, params):
    _chain(ingress_server, "s", [{"uuid": "a"}])
    r = _teleport(client, ingress_server, "s", oauth, **params)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_null_payload_events_appear_only_in_teleport(ingress_server, client, auth, oauth):
    _chain(ingress_server, "s", [{"uuid": "a"}])
    ingress_server.add_event("s", None, event_type="heartbeat")
    data = _teleport(client, ingress_server, "s", oauth).json()["data"]
    assert [e["payload"] for e in data] == [{"uuid": "a"}, None]
    read = client.get(ingress_server.session_url("s"), headers=auth).json()
    assert read == {"loglines": [{"uuid": "a"}]}


def test_endless_cursor_never_ends_the_pages(ingress_server, client, oauth):
    _chain(ingress_server, "s", [{"uuid": "a"}])
    ingress_server.faults.endless_teleport_cursor = True
    cursor = None
    for _ in range(5):
        params = {} if cursor is None else {"cursor": cursor}
        body = _teleport(client, ingress_server, "s", oauth, **params).json()
        cursor = body["next_cursor"]
    assert body["data"] == []


def test_by_default_the_ingress_token_and_any_org_make_an_oauth_read(
    ingress_server_factory, client
):
    """What a test written from PROTOCOL.md alone does against the defaults."""
    srv = ingress_server_factory(token="T")
    _chain(srv, "s", [{"uuid": "a"}])
    headers = {"Authorization": "Bearer T", "x-organization-uuid": str(uuid.uuid4())}
    assert client.get(srv.session_url("s"), headers=headers).json() == {"loglines": [{"uuid": "a"}]}
    page = client.get(srv.teleport_url("s"), headers=headers, params={"limit": 10})
    assert [e["payload"] for e in page.json()["data"]] == [{"uuid": "a"}]
    assert (
        client.get(srv.teleport_url("s"), headers={"Authorization": "Bearer T"}).status_code == 403
    )
    wrong = {"Authorization": "Bearer not-T", "x-organization-uuid": "o"}
    assert client.get(srv.teleport_url("s"), headers=wrong).status_code == 401
