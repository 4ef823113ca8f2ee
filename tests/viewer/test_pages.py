"""The viewer's pages in a real Chromium: sign in, list, read, filter, link, live."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.sync_api import expect

from ingress_logging.client import SessionIngressClient
from ingress_logging.server import IngressServer
from ingress_logging.server.viewer import COOKIE_NAME

from .sessions_data import conversation, numbered


def ship(server: IngressServer, session_id: str, entries: list[dict[str, Any]]) -> None:
    with SessionIngressClient(server.token, base_api_url=server.base_url) as client:
        for entry in entries:
            assert client.append_session_log(session_id, entry)


def test_sign_in_sets_a_signed_httponly_strict_cookie_and_sign_out_clears_it(
    server, viewer, page, screenshot
) -> None:
    page.goto(f"{viewer.base_url}/sessions")
    expect(page).to_have_url(f"{viewer.base_url}/signin?next=%2Fsessions")
    screenshot(page, "signin")

    page.fill("#token", "not-the-token")
    page.click("#signin")
    expect(page.locator(".error")).to_contain_text("not valid")
    assert page.context.cookies() == []

    page.fill("#token", server.token)
    page.click("#signin")
    expect(page).to_have_url(f"{viewer.base_url}/sessions")
    (cookie,) = page.context.cookies()
    assert cookie["name"] == COOKIE_NAME
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert server.token not in cookie["value"]
    assert server.token not in page.content()
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it

    page.click("#signout")
    expect(page).to_have_url(f"{viewer.base_url}/signin")
    assert page.context.cookies() == []
    # A copy of the cookie taken before signing out does not work either.
    stale = {COOKIE_NAME: cookie["value"]}
    with httpx.Client(base_url=viewer.base_url, cookies=stale) as client:
        assert client.get("/api/sessions").status_code == 401


def test_sessions_newest_first_filtered_by_prefix_paginated_with_live_counts(
    server, viewer_factory, page, sign_in, screenshot, store_clock
) -> None:
    viewer = viewer_factory(sessions_per_page=3)
    names = [f"team-a-{i}" for i in range(4)] + ["other-1"]
    for i, name in enumerate(names):
        ship(server, name, numbered(name, i + 1))
    sign_in(page, viewer)
    rows = page.locator("#session-rows tr")
    expect(rows).to_have_count(3)
    # newest last activity first: other-1, team-a-3, team-a-2
    expect(rows.locator(".session-link")).to_have_text(["other-1", "team-a-3", "team-a-2"])
    expect(rows.nth(1).locator(".entries")).to_have_text("4")

    page.click("#next-page")
    expect(rows.locator(".session-link")).to_have_text(["team-a-1", "team-a-0"])
    page.click("#first-page")

    page.fill("#prefix", "team-a-")
    page.click("#apply-prefix")
    expect(rows.locator(".session-link")).to_have_text(["team-a-3", "team-a-2", "team-a-1"])
    screenshot(page, "sessions")

    # Live: a new entry in a listed session updates its count (and the order)
    # without a reload.
    ship(server, "team-a-2", numbered("team-a-2", 1, start=100))
    expect(page.locator('tr[data-session-id="team-a-2"] .entries')).to_have_text("4")
    expect(rows.locator(".session-link")).to_have_text(["team-a-2", "team-a-3", "team-a-1"])


def test_a_session_reads_as_a_conversation(server, viewer, page, sign_in, screenshot) -> None:
    sid = "invoice-rounding"  # fixed: the screenshot in the docs stays the same
    entries = conversation(sid)
    ship(server, sid, entries)
    sign_in(page, viewer)
    page.click(f'a.session-link:text-is("{sid}")')
    expect(page).to_have_url(f"{viewer.base_url}/sessions/{sid}")
    articles = page.locator("#entries article.entry")
    expect(articles).to_have_count(len(entries))
    expect(page.locator("#shown")).to_have_text(
        f"Showing 1 to {len(entries)} of {len(entries)} entries"
    )
    expect(page.locator("#live-state")).to_have_text("live")
    screenshot(page, "session")

    # tool_use: the tool's name and its input; tool_result: the output
    tool = page.locator(".tool-use")
    expect(tool.locator(".tool-name")).to_have_text("Grep")
    expect(tool.locator("pre")).to_contain_text('"path": "src/billing"')
    expect(page.locator(".tool-result pre").first).to_have_text(
        "src/billing/totals.py:88: round(x, 2)"
    )
    expect(page.locator(".tool-result.is-error")).to_contain_text("permission denied")
    # thinking is collapsed until opened
    thinking = page.locator("details.thinking")
    assert thinking.get_attribute("open") is None
    expect(thinking.locator("pre")).not_to_be_visible()
    thinking.locator("summary").click()
    expect(thinking.locator("pre")).to_have_text("The rounding probably lives in totals.py.")
    # user and assistant text
    expect(articles.nth(1)).to_contain_text("Find where the invoice total is rounded.")
    # side chain, compaction boundary, gap
    expect(page.locator("article.sidechain .sidechain-badge")).to_have_count(1)
    expect(page.locator(".marker.compact")).to_contain_text("Conversation compacted")
    expect(page.locator(".marker.gap")).to_contain_text("3 log entries of this session were not")
    # the handler's log entry: level colour, logger, traceback
    log = page.locator("article.kind-system").filter(has=page.locator(".lvl-error"))
    expect(log.locator(".logger")).to_have_text("billing.worker")
    expect(log.locator(".traceback")).to_contain_text("ValueError: disk quota exceeded")
    expect(log.locator(".source")).to_have_text("/srv/billing/worker.py:42 in charge")
    log.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -120)")
    screenshot(page, "session-logs")
    # OpenTelemetry entries carry their trace and span ids
    expect(page.locator("article.kind-otel_log .ids")).to_contain_text(
        "trace_id 4bf92f3577b34da6a3ce929d0e0e4736 · span_id 00f067aa0ba902b7"
    )
    span = page.locator("article.kind-otel_span")
    expect(span.locator(".span-name")).to_have_text("POST /charge")
    expect(span.locator(".duration")).to_have_text("1234.5 ms")
    expect(span.locator(".status")).to_have_text("ERROR")
    # every entry's JSON, on demand
    raw = span.locator("details.raw")
    raw.locator("summary").click()
    expect(raw.locator("pre")).to_contain_text('"parent_span_id": "00f067aa0ba902b7"')
    # only the entry whose parentUuid does not name the one before it is flagged
    flagged = page.locator("article.chain-broken")
    expect(flagged).to_have_count(1)
    expect(flagged).to_contain_text("Out-of-chain reply.")


def test_filter_by_type_level_and_text(server, viewer, page, sign_in) -> None:
    sid = f"filt-{uuid.uuid4().hex[:8]}"
    ship(server, sid, conversation(sid))
    sign_in(page, viewer)
    page.goto(f"{viewer.base_url}/sessions/{sid}")
    articles = page.locator("#entries article.entry")
    expect(articles).to_have_count(len(conversation(sid)))

    page.select_option("#f-type", "otel_span")
    page.click("#apply-filter")
    expect(articles).to_have_count(1)
    expect(articles.locator(".span-name")).to_have_text("POST /charge")
    assert "type=otel_span" in page.url  # a filtered view can be linked

    page.click("#clear-filter")
    page.select_option("#f-level", "warning")
    page.click("#apply-filter")
    # warning and above: the error log, the WARN OTel log, the gap marker
    expect(articles).to_have_count(3)
    expect(page.locator("#shown")).to_contain_text("of 3 matching entries")

    page.click("#clear-filter")
    page.fill("#f-text", "TOTALS.PY:88")
    page.click("#apply-filter")
    expect(articles).to_have_count(1)
    expect(articles.locator(".tool-result")).to_have_count(1)

    # the filter survives a reload (it is in the address)
    page.reload()
    expect(articles).to_have_count(1)
    expect(page.locator("#f-text")).to_have_value("TOTALS.PY:88")


def test_a_permalink_opens_the_page_holding_the_entry(
    server, viewer_factory, page, sign_in
) -> None:
    viewer = viewer_factory(entries_per_page=20)
    sid = f"perm-{uuid.uuid4().hex[:8]}"
    entries = numbered(sid, 100)
    ship(server, sid, entries)
    sign_in(page, viewer)
    page.goto(f"{viewer.base_url}/sessions/{sid}")
    expect(page.locator("#shown")).to_have_text("Showing 1 to 20 of 100 entries")
    expect(page.locator("#load-more")).to_be_visible()

    # the permalink of entry 57 (a later page), copied from its link, opened fresh
    target = entries[57]["uuid"]
    link = f"{viewer.base_url}/sessions/{sid}#entry={target}"
    fresh = page.context.new_page()
    fresh.goto(link)
    highlighted = fresh.locator("article.target")
    expect(highlighted).to_have_count(1)
    expect(highlighted).to_contain_text("message 57")
    expect(highlighted).to_be_in_viewport()
    expect(fresh.locator("#shown")).to_have_text("Showing 41 to 60 of 100 entries")
    href = highlighted.locator("a.permalink").get_attribute("href")
    assert href == f"#entry={target}"

    # and "Load earlier" / "Load more" fill in what comes before and after it
    fresh.click("#load-earlier")
    expect(fresh.locator("#shown")).to_have_text("Showing 21 to 60 of 100 entries")
    fresh.click("#load-more")
    expect(fresh.locator("#shown")).to_have_text("Showing 21 to 80 of 100 entries")
    # a live entry beyond the window raises the count; Load more reaches it
    ship(server, sid, numbered(sid, 1, start=100))
    expect(fresh.locator("#count")).to_have_text("101")
    expect(fresh.locator("#shown")).to_have_text("Showing 21 to 80 of 101 entries")
    fresh.click("#load-more")
    fresh.click("#load-more")
    expect(fresh.locator("#shown")).to_have_text("Showing 21 to 101 of 101 entries")
    expect(fresh.locator("#entries article.entry").last).to_contain_text("message 100")
    expect(fresh.locator("#load-more")).to_be_hidden()


def test_new_entries_appear_live(server, viewer, page, sign_in) -> None:
    sid = f"live-{uuid.uuid4().hex[:8]}"
    first = numbered(sid, 3)
    ship(server, sid, first)
    sign_in(page, viewer)
    page.goto(f"{viewer.base_url}/sessions/{sid}")
    articles = page.locator("#entries article.entry")
    expect(articles).to_have_count(3)
    expect(page.locator("#live-state")).to_have_text("live")

    ship(server, sid, numbered(sid, 2, start=3))
    expect(articles).to_have_count(5)
    expect(articles.nth(4)).to_contain_text("message 4")
    expect(page.locator("#count")).to_have_text("5")
    # no reload happened: the page is the same document
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
