"""Fixtures for the viewer: a real ingress server, the viewer under uvicorn, a real Chromium.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright for
Python (never ``playwright install``); ``.ci/run`` installs the package.
Screenshots of the pages go to docs/img/ (``screenshot`` fixture), so the
docs show the real pages. What a page shows is fixed (session ids, entries,
and the store's clock for activity times: ``store_clock``), so a run rewrites
an image only when the page itself changed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingress_logging.server import IngressServer
from ingress_logging.server.viewer import StoreAuth, StoreViewer, viewer_app
from ingress_logging.server.viewer._runner import AppServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
def server(ingress_server: IngressServer) -> IngressServer:
    return ingress_server


@pytest.fixture
def store_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQLite store's clock starts at a fixed moment and advances one second
    per reading, so the activity times a page shows are the same on every run."""
    from ingress_logging.server.store import sqlite

    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    seconds = itertools.count()
    monkeypatch.setattr(sqlite, "now", lambda: start + timedelta(seconds=next(seconds)))


@pytest.fixture
def viewer_factory(server: IngressServer) -> Iterator[Callable[..., AppServer]]:
    """Start the viewer over ``server``'s store; keyword arguments go to viewer_app."""
    started: list[AppServer] = []

    def start(**options: Any) -> AppServer:
        options.setdefault("live_interval", 0.05)
        reads, auth = StoreViewer(server.store), StoreAuth(server.store, server.token)
        app = viewer_app(reads, auth, **options)
        running = AppServer(app)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def viewer(viewer_factory: Callable[..., AppServer]) -> AppServer:
    return viewer_factory()


# Module scope: sync Playwright keeps an event loop running on the main thread
# while it is open, and a later test module that calls asyncio.run() must
# not run inside it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    # A ceiling for waits on a loaded machine; each wait ends as soon as the page is right.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def sign_in(server: IngressServer) -> Callable[[Any, AppServer], None]:
    """Sign ``page`` in to ``viewer`` through the sign-in form with the server's token."""

    def run(page: Any, viewer: AppServer) -> None:
        page.goto(f"{viewer.base_url}/signin")
        page.fill("#token", server.token)
        page.click("#signin")
        page.wait_for_url(f"{viewer.base_url}/sessions")

    return run


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """Save a full-page screenshot as docs/img/viewer-NAME.png (what docs/viewer.md shows)."""

    def take(page: Any, name: str) -> Path:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        path = DOCS_IMG / f"viewer-{name}.png"
        data = page.screenshot(full_page=False)
        assert data.startswith(b"\x89PNG")
        path.write_bytes(data)
        return path

    return take
