"""The viewer inside the server: ``IngressServer(viewer=True)`` and ``ingress-logging serve``
answer the protocol and the viewer on one port, with nothing else to start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import expect

from ingress_logging.client import SessionIngressClient
from ingress_logging.server.viewer import CSP

from .sessions_data import numbered


def test_the_server_serves_the_viewer_beside_the_protocol(ingress_server_factory, page) -> None:
    server = ingress_server_factory(viewer=True)
    sid = "mounted-1"
    with SessionIngressClient(server.token, base_api_url=server.base_url) as client:
        for entry in numbered(sid, 2):
            assert client.append_session_log(sid, entry)

    page.goto(f"{server.base_url}/")
    expect(page).to_have_url(f"{server.base_url}/signin?next=%2Fsessions")
    page.fill("#token", server.token)
    page.click("#signin")
    page.click(f'a.session-link:text-is("{sid}")')
    articles = page.locator("#entries article.entry")
    expect(articles).to_have_count(2)
    expect(page.locator("#live-state")).to_have_text("live")
    with SessionIngressClient(server.token, base_api_url=server.base_url) as client:
        assert client.append_session_log(sid, numbered(sid, 1, start=2)[0])
    expect(articles).to_have_count(3)

    # the protocol and operations paths are still the server's own
    with httpx.Client(base_url=server.base_url) as http:
        assert http.get("/healthz").status_code == 200
        missing = http.get("/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"]
        assert http.get(f"/v1/session_ingress/session/{sid}").status_code == 401
    # stopping with a live page open ends its stream
    server.stop()
    expect(page.locator("#live-state")).to_have_text("reconnecting")


def test_a_token_with_only_the_append_scope_cannot_sign_in(ingress_server_factory) -> None:
    server = ingress_server_factory(viewer=True)
    writer = server.store.create_token("ci", "append")
    reader = server.store.create_token("humans", "read")
    with httpx.Client(base_url=server.base_url) as http:
        assert http.post("/signin", data={"token": writer}).status_code == 401
        assert http.post("/signin", data={"token": reader}).status_code == 303
        assert http.get("/api/sessions").status_code == 200


def test_ingress_logging_serve_gives_the_viewer(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    env["INGRESS_LOGGING_TOKEN"] = "serve-token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingress_logging.cli", "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        announced = [proc.stderr.readline() for _ in range(3)]
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", announced[0])
        assert match is not None, announced
        base = match.group(1)
        assert f"web viewer: {base}/" in "".join(announced)
        with httpx.Client(base_url=base) as http:
            assert http.get("/").headers["location"] == "/sessions"
            signin = http.get("/signin")
            assert signin.status_code == 200
            assert signin.headers["content-security-policy"] == CSP
            assert http.post("/signin", data={"token": "serve-token"}).status_code == 303
            assert http.get("/api/sessions").json() == {"sessions": [], "next_cursor": None}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        proc.stderr.close()


def test_every_worker_accepts_a_cookie_another_signed(pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    command = [sys.executable, "-m", "ingress_logging.cli", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--workers", "2", "--db", pg_url, "--token", "T"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stderr.readline())
        assert match is not None
        base = match.group(1)
        with httpx.Client(base_url=base) as http:
            assert http.post("/signin", data={"token": "T"}).status_code == 303
            cookies = dict(http.cookies)
        statuses = set()
        for _ in range(20):  # new connections land on either worker
            with httpx.Client(base_url=base, cookies=cookies) as fresh:
                statuses.add(fresh.get("/api/sessions").status_code)
        assert statuses == {200}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        proc.stderr.close()
