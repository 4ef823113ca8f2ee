"""Transcript content is hostile: it renders as text and never runs.

Every payload also tries to set ``window.__pwned`` and open a dialog, so a
payload that ran anywhere on the page is caught two ways; the page must hold
no element the payloads would inject.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from ingress_logging.server import IngressServer
from ingress_logging.server.viewer import CSP

from .sessions_data import store_all

ONE_MB = 1024 * 1024
SCRIPT = "<script>window.__pwned=1;alert(1)</script>"
IMG = '<img src=x onerror="window.__pwned=2;alert(2)">'
LINK = '<a id="evil" href="javascript:window.__pwned=3;alert(3)">click me</a>'
CLOSE = '</pre></div><script>window.__pwned=5;alert(5)</script><svg onload="alert(5)">'
INJECTED = "#entries script, #entries img, #entries svg, #entries iframe, a#evil, [onerror]"


def corpus(session_id: str) -> list[dict[str, Any]]:
    parent = str(uuid.uuid4())
    return [
        {"type": "user", "uuid": parent, "message": {"role": "user", "content": SCRIPT}},
        {
            "type": "assistant",
            "uuid": '"><img/src=x/onerror=alert(8)>',
            "parentUuid": parent,
            "message": {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": LINK},
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": '<svg onload="alert(4)">',
                        "input": {"cmd": CLOSE},
                    },
                    {"type": "thinking", "thinking": SCRIPT},
                ],
            },
        },
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": IMG},
                    {"type": "tool_result", "tool_use_id": "t1", "content": "A" * ONE_MB},
                ],
            },
        },
        {
            "type": "system",
            "subtype": "log",
            "level": "<b>error</b>",
            "logger": '"><script>alert(6)</script>',
            "content": IMG,
            "exception": CLOSE,
        },
        {"type": 'x" onmouseover="alert(7)', "content": SCRIPT},
        {"type": "otel_log", "body": {"html": IMG}, "severity": {"text": SCRIPT}},
        {"type": "summary", "summary": "{{ 7*7 }} {% raw %}" + SCRIPT},
    ]


def test_the_xss_corpus_renders_as_text_and_never_runs(
    server: IngressServer, viewer, page, sign_in
) -> None:
    sid = f"xss-{uuid.uuid4().hex[:8]}"
    entries = corpus(sid)
    store_all(server, sid, entries)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, viewer)
    page.goto(f"{viewer.base_url}/sessions/{sid}")
    articles = page.locator("#entries article.entry")
    expect(articles).to_have_count(len(entries))

    expect(articles.nth(0).locator("pre")).to_have_text(SCRIPT)
    expect(page.get_by_text(LINK)).to_have_count(1)
    expect(page.locator(".tool-name")).to_have_text('<svg onload="alert(4)">')
    expect(page.locator(".tool-result pre").first).to_have_text(IMG)
    expect(page.locator(".logger")).to_have_text('"><script>alert(6)</script>')
    expect(page.locator(".summary pre")).to_have_text("{{ 7*7 }} {% raw %}" + SCRIPT)

    # 1 MB on one line is folded, and unfolds as text
    big = page.locator(".tool-result").nth(1)
    unfold = big.locator("button.unfold")
    expect(unfold).to_have_text("Show all (1,048,576 characters)")
    unfold.click()
    expect(unfold).to_have_count(0)
    assert big.locator("pre").evaluate("node => node.textContent.length") == ONE_MB

    # open everything that was collapsed, so every payload is in the DOM
    for details in page.locator("details").all():
        details.locator("summary").first.click()
    page.locator("#f-text").fill("script")  # a filter run re-renders the hostile entries
    page.click("#apply-filter")
    expect(page.locator("#shown")).to_contain_text("matching entries")

    assert page.locator(INJECTED).count() == 0
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_the_prefix_filter_is_escaped_in_the_page(server, viewer, page, sign_in) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, viewer)
    page.goto(f"{viewer.base_url}/sessions?prefix=" + httpx.QueryParams({"p": IMG})["p"])
    page.goto(f"{viewer.base_url}/sessions?{httpx.QueryParams({'prefix': IMG})}")
    expect(page.locator("#prefix")).to_have_value(IMG)
    expect(page.locator("#session-rows")).to_contain_text(IMG)
    assert page.locator("img, [onerror]").count() == 0
    assert dialogs == []


def test_the_policy_blocks_inline_scripts(server, viewer, page, sign_in) -> None:
    """Even a script element that got into the page would not run: the CSP has no unsafe-inline."""
    assert "unsafe-inline" not in CSP
    sign_in(page, viewer)
    response = page.goto(f"{viewer.base_url}/sessions")
    assert response is not None
    assert response.headers["content-security-policy"] == CSP
    page.evaluate(
        """() => {
            const s = document.createElement("script");
            s.textContent = "window.__inline = 1";
            document.body.appendChild(s);
        }"""
    )
    assert page.evaluate("window.__inline") is None
