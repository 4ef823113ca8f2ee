"""The web viewer: sessions and their entries in a browser, served by the server.

``viewer_app(store, auth)`` returns an ASGI app (Starlette) to mount at ``/``
of the server's app, or to run alone under uvicorn. ``store`` is anything
with the :class:`ViewerStore` reads, ``auth`` anything with
:class:`ReadAuth`'s ``can_read``. Pages: sign-in, the sessions list, one
session as a conversation (filters, permalinks, JSONL download, live
entries over server-sent events). See docs/viewer.md.
"""

from __future__ import annotations

import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ._api import Api
from ._context import ViewerContext
from ._cookie import COOKIE_NAME, CookieSigner
from ._pages import Pages
from ._runner import AppServer, run_app
from ._security import CSP, SecurityHeaders
from ._server_store import StoreAuth, StoreViewer
from ._source import ReadAuth, SessionPage, SessionSummary, ViewerStore

__all__ = [
    "COOKIE_NAME",
    "CSP",
    "AppServer",
    "ReadAuth",
    "SessionPage",
    "SessionSummary",
    "StoreAuth",
    "StoreViewer",
    "ViewerStore",
    "run_app",
    "viewer_app",
]

_STATIC = Path(__file__).with_name("static")


def viewer_app(
    store: ViewerStore,
    auth: ReadAuth,
    *,
    secret: bytes | None = None,
    live_interval: float = 0.5,
    sessions_per_page: int = 50,
    entries_per_page: int = 200,
    stopping: threading.Event | None = None,
) -> Starlette:
    """The viewer as an ASGI app.

    ``secret`` signs the sign-in cookies; None picks a random one, which
    signs everyone out when the process restarts. Several worker processes
    behind one address need one shared ``secret``. ``live_interval`` is how
    often (seconds) a live page's stream looks for new entries. Setting
    ``stopping`` ends the live streams (within ``live_interval``), so a
    server with open pages can stop.
    """
    context = ViewerContext(
        store=store,
        auth=auth,
        signer=CookieSigner(secret),
        live_interval=live_interval,
        sessions_per_page=sessions_per_page,
        entries_per_page=entries_per_page,
        stopping=stopping if stopping is not None else threading.Event(),
    )
    pages = Pages(context)
    api = Api(context)
    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/signin", pages.signin_form, methods=["GET"]),
        Route("/signin", pages.signin, methods=["POST"]),
        Route("/signout", pages.signout, methods=["POST"]),
        Route("/sessions", pages.sessions, methods=["GET"]),
        Route("/sessions/{session_id}", pages.session, methods=["GET"]),
        Route("/sessions/{session_id}/export.jsonl", pages.export, methods=["GET"]),
        Route("/api/sessions", api.sessions, methods=["GET"]),
        Route("/api/sessions/{session_id}/entries", api.entries, methods=["GET"]),
        Route("/api/sessions/{session_id}/live", api.live, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
