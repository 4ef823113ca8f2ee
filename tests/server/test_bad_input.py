"""Bad input: always a 4xx with a JSON error body, never a 500, never a partial write."""

from __future__ import annotations

import base64
import http.client
import json
from email.message import Message

import httpx
import pytest

from ingress_logging.server import IngressServer

S = "/v1/session_ingress/session/"
JSON = {"Content-Type": "application/json"}
TP = "/v1/code/sessions/s/teleport-events"
BIG_CURSOR = base64.urlsafe_b64encode(b"e:" + b"9" * 30).decode().rstrip("=")

# (id, method, path, extra headers, body, expected status)
CASES = [
    ("malformed-json", "PUT", S + "s", JSON, b'{"uuid": ', 400),
    ("array-body", "PUT", S + "s", JSON, b"[1, 2]", 400),
    ("string-body", "PUT", S + "s", JSON, b'"entry"', 400),
    ("null-body", "PUT", S + "s", JSON, b"null", 400),
    ("empty-body", "PUT", S + "s", JSON, b"", 400),
    ("nan", "PUT", S + "s", JSON, b'{"x": NaN}', 400),
    ("invalid-utf8", "PUT", S + "s", JSON, b'{"x": "\xff"}', 400),
    ("deep-nesting", "PUT", S + "s", JSON, b'{"a":' * 100_000, 400),
    # valid to Python's json module, unreadable to the library's reader (orjson):
    # storing them would make every later read of the session fail
    ("lone-surrogate", "PUT", S + "s", JSON, b'{"uuid": "a", "x": "\\ud800"}', 400),
    ("number-overflows-to-infinity", "PUT", S + "s", JSON, b'{"uuid": "a", "x": 1e400}', 400),
    ("text-plain", "PUT", S + "s", {"Content-Type": "text/plain"}, b'{"uuid": "a"}', 400),
    ("no-content-type", "PUT", S + "s", {}, b'{"uuid": "a"}', 400),
    ("uuid-not-string", "PUT", S + "s", JSON, b'{"uuid": 5}', 400),
    ("uuid-empty", "PUT", S + "s", JSON, b'{"uuid": ""}', 400),
    ("uuid-crlf", "PUT", S + "s", JSON, b'{"uuid": "a\\r\\nSet-Cookie: x=1"}', 400),
    ("uuid-non-ascii", "PUT", S + "s", JSON, b'{"uuid": "\\u00e9"}', 400),
    ("uuid-space", "PUT", S + "s", JSON, b'{"uuid": "a b"}', 400),
    ("uuid-too-long", "PUT", S + "s", JSON, b'{"uuid": "' + b"u" * 257 + b'"}', 400),
    ("sid-dotdot", "PUT", S + "..", JSON, b'{"uuid": "a"}', 400),
    ("sid-encoded-dotdot", "PUT", S + "%2E%2E", JSON, b'{"uuid": "a"}', 400),
    ("sid-encoded-slash", "PUT", S + "a%2Fb", JSON, b'{"uuid": "a"}', 400),
    ("sid-space", "PUT", S + "a%20b", JSON, b'{"uuid": "a"}', 400),
    ("sid-nul", "PUT", S + "a%00", JSON, b'{"uuid": "a"}', 400),
    ("sid-bad-utf8", "PUT", S + "a%ff", JSON, b'{"uuid": "a"}', 400),
    ("sid-too-long", "PUT", S + "x" * 300, JSON, b'{"uuid": "a"}', 400),
    ("sid-empty", "PUT", S, JSON, b'{"uuid": "a"}', 400),
    ("sid-with-subpath", "PUT", S + "a/b", JSON, b'{"uuid": "a"}', 404),
    ("unknown-path", "PUT", "/v1/nope", JSON, b'{"uuid": "a"}', 404),
    ("root", "GET", "/", {}, b"", 404),
    ("delete-unknown-session", "DELETE", S + "s", {}, b"", 404),
    ("post-session", "POST", S + "s", JSON, b'{"uuid": "a"}', 405),
    ("patch-session", "PATCH", S + "s", JSON, b'{"uuid": "a"}', 405),
    ("put-teleport", "PUT", "/v1/code/sessions/s/teleport-events", JSON, b"{}", 405),
    ("bad-content-length", "PUT", S + "s", {**JSON, "Content-Length": "abc"}, None, 400),
    ("unknown-method", "BREW", S + "s", {}, b"", 501),
    ("read-bad-flag", "GET", S + "s?after_last_compact=maybe", {}, b"", 400),
    ("read-bad-sid", "GET", S + "%2E", {}, b"", 400),
    ("teleport-bad-sid", "GET", "/v1/code/sessions/..%2F/teleport-events", {}, b"", 400),
    ("teleport-subpath", "GET", "/v1/code/sessions/a/b/teleport-events", {}, b"", 404),
    ("admin-wrong-method", "PUT", "/_admin/faults", JSON, b"{}", 405),
    # str.isdigit() is true for these, int() is not: must be a 400, not a 500
    ("content-length-superscript", "PUT", S + "s", {**JSON, "Content-Length": "\xb2"}, None, 400),
    (
        "expect-100-superscript",
        "PUT",
        S + "s",
        {**JSON, "Content-Length": "\xb2", "Expect": "100-continue"},
        None,
        400,
    ),
    ("teleport-limit-superscript", "GET", TP + "?limit=%C2%B2", {}, b"", 400),
    ("teleport-limit-arabic-digit", "GET", TP + "?limit=%D9%A1", {}, b"", 400),
    # a well-formed cursor whose number does not fit SQLite's 64-bit integer
    ("teleport-cursor-overflow", "GET", TP + "?cursor=" + BIG_CURSOR, {}, b"", 400),
]


def _raw(srv: IngressServer, method, path, headers, body) -> tuple[int, Message, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if path.startswith("/v1/code/"):  # teleport events take the OAuth credentials
            conn.putheader("Authorization", f"Bearer {srv.oauth_token}")
            conn.putheader("x-organization-uuid", srv.org_uuid)
        else:
            conn.putheader("Authorization", f"Bearer {srv.token}")
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()  # names case-insensitive
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_gets_a_json_4xx_and_stores_nothing(
    ingress_server, method, path, headers, body, status
):
    got, reply_headers, reply = _raw(ingress_server, method, path, headers, body)
    assert got == status
    error = json.loads(reply)["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    if status == 405:
        assert "Allow" in reply_headers
    assert ingress_server.store.count_events() == 0
    # the server is still healthy
    ok, _, _ = _raw(ingress_server, "PUT", S + "s", JSON, b'{"uuid": "a"}')
    assert ok == 201


def test_head_request_gets_405_without_body(ingress_server):
    status, headers, body = _raw(ingress_server, "HEAD", S + "s", {}, None)
    assert (status, body) == (405, b"")
    assert int(headers["Content-Length"]) > 0


def test_oversize_body_is_413_and_the_connection_stays_usable(ingress_server_factory):
    srv = ingress_server_factory(max_body_bytes=1024)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    headers = {"Authorization": f"Bearer {srv.token}", **JSON}
    try:
        big = json.dumps({"uuid": "a", "pad": "x" * 2000}).encode()
        conn.request("PUT", S + "s", big, headers)
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["error"]["type"] == "request_too_large"
        sock = conn.sock
        conn.request("PUT", S + "s", json.dumps({"uuid": "a"}).encode(), headers)
        again = conn.getresponse()
        again.read()
        assert again.status == 201
        assert conn.sock is sock
    finally:
        conn.close()
    assert [e["uuid"] for e in srv.entries("s")] == ["a"]


def test_exactly_the_size_limit_is_accepted(ingress_server_factory, client):
    srv = ingress_server_factory(max_body_bytes=1024)
    body = json.dumps({"uuid": "a", "pad": ""}).encode()
    body = body.replace(b'""', b'"' + b"x" * (1024 - len(body)) + b'"')
    assert len(body) == 1024
    headers = {"Authorization": f"Bearer {srv.token}", **JSON}
    assert client.put(srv.session_url("s"), content=body, headers=headers).status_code == 201


def test_chunked_body_is_read_and_limited(ingress_server_factory, client):
    srv = ingress_server_factory(max_body_bytes=1024)
    headers = {"Authorization": f"Bearer {srv.token}", **JSON}

    def chunks(data: bytes):
        yield data[:5]
        yield data[5:]

    ok = client.put(srv.session_url("s"), content=chunks(b'{"uuid": "a"}'), headers=headers)
    assert ok.status_code == 201
    too_big = client.put(
        srv.session_url("s"), content=chunks(b'{"p": "' + b"x" * 2000 + b'"}'), headers=headers
    )
    assert too_big.status_code == 413
    assert [e["uuid"] for e in srv.entries("s")] == ["a"]


def test_bad_admin_spec_is_400_and_changes_nothing(ingress_server, client, auth):
    ingress_server.faults.latency = 0.001
    url = ingress_server.base_url + "/_admin/faults"
    r = client.post(url, json={"latency": 0.5, "fail_next": {"n": -1}}, headers=auth)
    assert r.status_code == 400
    assert ingress_server.faults.latency == 0.001
    assert ingress_server.faults.pending() == 0


def test_expect_100_continue_oversize_is_refused_before_the_body(ingress_server_factory):
    import socket

    srv = ingress_server_factory(max_body_bytes=1024)
    head = (
        "PUT /v1/session_ingress/session/s HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {srv.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(head)  # and never the body
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b'"request_too_large"' in reply
    assert b"100 Continue" not in reply
    assert srv.store.count_events() == 0


def test_expect_100_continue_within_the_limit_proceeds(ingress_server, client, auth):
    r = client.put(
        ingress_server.session_url("s"),
        json={"uuid": "a"},
        headers={**auth, "Expect": "100-continue"},
    )
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (S + "s", {"Authorization": "Bearer \xe9t\xe9"}),
        ("/v1/code/sessions/s/teleport-events", {"Authorization": "Bearer caf\xe9"}),
        ("/v1/code/sessions/s/teleport-events", {"x-organization-uuid": "\xe9"}),
        ("/_admin/faults", {"Authorization": "Bearer \xff"}),
    ],
    ids=["read-bearer", "teleport-bearer", "teleport-org", "admin-bearer"],
)
def test_non_ascii_credentials_are_refused_not_a_500(ingress_server, path, headers):
    """Header values arrive as latin-1 text; comparing them must not crash."""
    ingress_server.append_foreign("s")
    sent = {"Authorization": f"Bearer {ingress_server.oauth_token}", **headers}
    conn = http.client.HTTPConnection("127.0.0.1", ingress_server.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in sent.items():
            conn.putheader(name, value)  # http.client encodes str values as latin-1
        conn.endheaders()
        resp = conn.getresponse()
        status, body = resp.status, resp.read()
    finally:
        conn.close()
    assert status in (401, 403)
    assert json.loads(body)["error"]["type"] in ("authentication_error", "permission_error")


def test_a_client_reset_is_not_a_traceback_on_stderr(ingress_server, capsys, wait_for):
    """A client that vanishes (TCP reset) is normal traffic, not a server error."""
    import socket
    import struct

    conn = socket.create_connection(("127.0.0.1", ingress_server.port))
    conn.sendall(b"GET " + S.encode() + b"s HTTP/1.1\r\nHost: x\r\n")  # headers unfinished
    wait_for(lambda: ingress_server.open_connections() > 0, what="the connection accepted")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # linger 0: the kernel sends RST
    wait_for(lambda: ingress_server.open_connections() == 0, what="the connection closed")
    ingress_server.stop()  # joins the handler threads: any report is printed by now
    assert "Traceback" not in capsys.readouterr().err


def test_a_head_reply_has_no_body_and_the_connection_goes_on(ingress_server):
    import socket

    with socket.create_connection(("127.0.0.1", ingress_server.port), timeout=10) as sock:
        sock.sendall(
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 15" in head.lower()  # the length a GET would get
    assert rest.startswith(b"HTTP/1.1 200 ")  # no body bytes before the next reply
    assert rest.endswith(b'{"status":"ok"}')


def test_an_oversize_body_for_the_web_viewer_is_413_too(ingress_server_factory):
    srv = ingress_server_factory(viewer=True, max_body_bytes=1024)
    with httpx.Client(timeout=10) as client:
        too_big = client.post(srv.base_url + "/signin", content=b"x" * 2000)
        assert too_big.status_code == 413
        assert too_big.json()["error"]["type"] == "request_too_large"
        assert client.get(srv.base_url + "/healthz").status_code == 200  # same connection
