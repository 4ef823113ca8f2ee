"""The viewer's HTTP surface without a browser: nothing answers without the cookie."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
import pytest

from ingress_logging.server.viewer import COOKIE_NAME, StoreAuth, StoreViewer, viewer_app
from ingress_logging.server.viewer._cookie import CookieSigner
from ingress_logging.server.viewer._security import safe_next

from .sessions_data import conversation, store_all

PROTECTED = [
    "/sessions",
    "/sessions/s1",
    "/sessions/s1/export.jsonl",
    "/api/sessions",
    "/api/sessions/s1/entries",
    "/api/sessions/s1/live",
]


@contextmanager
def signed_in_client(viewer, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=viewer.base_url) as client:
        reply = client.post("/signin", data={"token": token})
        assert reply.status_code == 303
        yield client


@pytest.mark.parametrize("path", PROTECTED)
@pytest.mark.parametrize("cookie", [None, "forged", "1.99999999999.nonce.sig"])
def test_nothing_answers_without_a_valid_cookie(server, viewer, path, cookie) -> None:
    store_all(server, "s1", conversation("s1"))
    cookies = {COOKIE_NAME: cookie} if cookie else {}
    with httpx.Client(base_url=viewer.base_url, cookies=cookies) as client:
        reply = client.get(path)
    if path.startswith("/api/"):
        assert reply.status_code == 401
        assert reply.json() == {"error": {"message": "sign in first"}}
    else:
        assert reply.status_code == 303
        assert reply.headers["location"].startswith("/signin?next=")
    assert "round(x, 2)" not in reply.text


def test_a_cookie_is_signed_expires_and_is_revoked_on_sign_out() -> None:
    signer = CookieSigner(b"k" * 32, max_age=60)
    cookie = signer.issue(now=1000.0)
    assert signer.valid(cookie, now=1059.0)
    assert not signer.valid(cookie, now=1060.0)
    issued, expires, nonce, _ = cookie.split(".")
    assert not signer.valid(f"{issued}.{int(expires) + 999}.{nonce}.{_}", now=1000.0)
    assert not CookieSigner(b"x" * 32).valid(cookie, now=1000.0)
    signer.revoke(cookie)
    assert not signer.valid(cookie, now=1001.0)
    assert "k" * 8 not in repr(signer)


def test_sign_in_refuses_a_cross_site_form_and_a_wrong_token(server, viewer) -> None:
    with httpx.Client(base_url=viewer.base_url) as client:
        evil = client.post(
            "/signin", data={"token": server.token}, headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403
        wrong = client.post("/signin", data={"token": server.token + "x"})
        assert wrong.status_code == 401
        assert COOKIE_NAME not in wrong.headers.get("set-cookie", "")
        assert server.token not in wrong.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/sessions/a?b=c", "/sessions/a?b=c"),
        ("//evil.example/", "/sessions"),
        ("https://evil.example/", "/sessions"),
        ("/\\evil.example", "/sessions"),
        ("/x\r\nSet-Cookie: a=b", "/sessions"),
        (None, "/sessions"),
    ],
)
def test_sign_in_returns_only_to_a_path_of_this_site(value, expected) -> None:
    assert safe_next(value, "/sessions") == expected


def test_entries_api_windows_filters_and_flags(server, viewer) -> None:
    sid = f"api-{uuid.uuid4().hex[:8]}"
    entries = conversation(sid)
    store_all(server, sid, entries)
    with signed_in_client(viewer, server.token) as client:
        page = client.get(f"/api/sessions/{sid}/entries", params={"offset": 2, "limit": 3}).json()
        assert page["total"] == len(entries)
        assert [item["i"] for item in page["items"]] == [2, 3, 4]
        assert [item["entry"] for item in page["items"]] == entries[2:5]
        flagged = client.get(f"/api/sessions/{sid}/entries", params={"offset": 12}).json()
        assert [item["chain_broken"] for item in flagged["items"]] == [True, False]
        errors = client.get(f"/api/sessions/{sid}/entries", params={"level": "error"}).json()
        assert [item["entry"]["logger"] for item in errors["items"]] == ["billing.worker"]
        assert errors["matched"] == 1
        assert (
            client.get(f"/api/sessions/{sid}/entries", params={"level": "loud"}).status_code == 400
        )
        assert (
            client.get(f"/api/sessions/{sid}/entries", params={"offset": "-1"}).status_code == 400
        )
        assert client.get("/api/sessions/nope/entries").status_code == 404
        assert client.get("/api/sessions/bad%20id/entries").status_code == 404
        assert client.get("/api/sessions", params={"cursor": "garbage!"}).status_code == 400


def test_download_is_what_export_writes(server, viewer, tmp_path) -> None:
    sid = f"dl-{uuid.uuid4().hex[:8]}"
    entries = conversation(sid)
    entries.append({"type": "user", "message": {"role": "user", "content": "line\u2028sep"}})
    store_all(server, sid, entries)
    with signed_in_client(viewer, server.token) as client:
        reply = client.get(f"/sessions/{sid}/export.jsonl")
    assert reply.status_code == 200
    assert reply.headers["content-disposition"] == f'attachment; filename="{sid}.jsonl"'
    env = {"INGRESS_LOGGING_BASE_URL": server.base_url, "INGRESS_LOGGING_TOKEN": server.token}
    exported = subprocess.run(
        [sys.executable, "-m", "ingress_logging.cli", "export", sid, "-o", "-"],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert reply.content == exported
    assert len(reply.content.splitlines()) == len(entries)


def test_the_cookie_lives_12_hours_and_is_secure_over_https(server) -> None:
    app = viewer_app(StoreViewer(server.store), StoreAuth(server.store, server.token))

    async def sign_in(scheme: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://v.test") as client:
            return await client.post("/signin", data={"token": server.token})

    for scheme in ("http", "https"):
        reply = asyncio.run(sign_in(scheme))
        assert reply.status_code == 303
        cookie = reply.headers["set-cookie"]
        assert "Max-Age=43200" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert ("Secure" in cookie) is (scheme == "https")


def test_live_events_are_numbered_by_position_and_resume_without_repeats(server, viewer) -> None:
    sid = f"sse-{uuid.uuid4().hex[:8]}"
    entries = conversation(sid)
    store_all(server, sid, entries)
    url = f"/api/sessions/{sid}/live"
    resume = {"Last-Event-ID": "5"}  # what a reconnecting EventSource sends
    with (
        signed_in_client(viewer, server.token) as client,
        client.stream("GET", url, params={"from": 0}, headers=resume) as reply,
    ):
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        assert next(lines) == "retry: 2000"
        assert next(lines) == ""
        assert next(lines) == "id: 6"
        assert next(lines) == "event: entry"
        first = orjson.loads(next(lines).removeprefix("data: "))
    assert first["i"] == 5
    assert first["entry"] == entries[5]
    assert first["total"] == len(entries)


def test_paging_does_not_shift_when_new_sessions_arrive(server, viewer) -> None:
    for name in ("p-a", "p-b", "p-c", "p-d"):
        store_all(server, name, conversation(name)[:1])
    with signed_in_client(viewer, server.token) as client:
        first = client.get("/api/sessions", params={"prefix": "p-", "limit": 2}).json()
        assert [s["id"] for s in first["sessions"]] == ["p-d", "p-c"]
        store_all(server, "p-e", conversation("p-e")[:1])
        params = {"prefix": "p-", "limit": 2, "cursor": first["next_cursor"]}
        second = client.get("/api/sessions", params=params).json()
        assert [s["id"] for s in second["sessions"]] == ["p-b", "p-a"]
        assert second["next_cursor"] is None
