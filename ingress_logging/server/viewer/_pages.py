"""The viewer's HTML pages and sign-in/sign-out (Jinja2, autoescape on)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qs, quote

import jinja2
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from ..._entry_filter import LEVELS
from ..._session_id import validate_session_id
from ...entries import dump_line
from ...errors import InvalidSessionIdError
from ._context import ViewerContext
from ._cookie import COOKIE_NAME
from ._security import safe_next, same_origin, signed_in

__all__ = ["Pages"]

#: Entry kinds offered by the type filter (any other kind is still shown unfiltered).
KINDS: Final = (
    "user",
    "assistant",
    "system",
    "system/log",
    "system/gap",
    "system/compact_boundary",
    "summary",
    "otel_log",
    "otel_span",
    "file-history-snapshot",
)
_MAX_FORM: Final = 16 * 1024
_EXPORT_BATCH: Final = 1000


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ingress_logging.server.viewer", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


class Pages:
    """Route handlers for the HTML side of the viewer."""

    def __init__(self, context: ViewerContext) -> None:
        self.ctx = context
        self.env = _environment()

    def _render(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        html = self.env.get_template(name).render(
            base=base, signed_in=signed_in(request, self.ctx.signer), **values
        )
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})

    def _to_signin(self, request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base}/signin?next={quote(here, safe='')}", 303)

    async def home(self, request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{base}/sessions", 303)

    async def signin_form(self, request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        target = safe_next(request.query_params.get("next"), f"{base}/sessions")
        return self._render(request, "signin.html", next=target, error=None)

    async def signin(self, request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        if not same_origin(request):
            return self._render(request, "signin.html", 403, next="", error="Cross-site sign-in.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                return self._render(request, "signin.html", 413, next="", error="Form too large.")
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        token = form.get("token", [""])[-1].strip()
        target = safe_next(form.get("next", [""])[-1], f"{base}/sessions")
        if not token or not self.ctx.auth.can_read(token):
            error = "That token is not valid or has no read scope."
            return self._render(request, "signin.html", 401, next=target, error=error)
        response = RedirectResponse(target, 303)
        response.set_cookie(
            COOKIE_NAME,
            self.ctx.signer.issue(),
            max_age=self.ctx.signer.max_age,
            path=base or "/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def signout(self, request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        self.ctx.signer.revoke(request.cookies.get(COOKIE_NAME))
        response = RedirectResponse(f"{base}/signin", 303)
        response.delete_cookie(
            COOKIE_NAME,
            path=base or "/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def sessions(self, request: Request) -> Response:
        if not signed_in(request, self.ctx.signer):
            return self._to_signin(request)
        prefix = request.query_params.get("prefix", "")
        cursor = request.query_params.get("cursor") or None
        try:
            page = await run_in_threadpool(
                self.ctx.store.list_sessions,
                prefix=prefix,
                limit=self.ctx.sessions_per_page,
                cursor=cursor,
            )
        except ValueError as exc:
            return self._render(request, "error.html", 400, message=str(exc))
        return self._render(
            request,
            "sessions.html",
            page=page,
            prefix=prefix,
            cursor=cursor or "",
            per_page=self.ctx.sessions_per_page,
            refresh_ms=int(self.ctx.live_interval * 1000 * 4),
        )

    def _session_id(self, request: Request) -> str | None:
        try:
            return validate_session_id(request.path_params["session_id"])
        except InvalidSessionIdError:
            return None

    async def session(self, request: Request) -> Response:
        if not signed_in(request, self.ctx.signer):
            return self._to_signin(request)
        session_id = self._session_id(request)
        summary = (
            None
            if session_id is None
            else await run_in_threadpool(self.ctx.store.session, session_id)
        )
        if summary is None:
            return self._render(request, "error.html", 404, message="No such session.")
        return self._render(
            request,
            "session.html",
            summary=summary,
            kinds=KINDS,
            levels=LEVELS,
            page_size=self.ctx.entries_per_page,
        )

    async def export(self, request: Request) -> Response:
        """The session as JSONL, byte for byte what ``ingress-logging export`` writes."""
        if not signed_in(request, self.ctx.signer):
            return self._to_signin(request)
        session_id = self._session_id(request)
        summary = (
            None
            if session_id is None
            else await run_in_threadpool(self.ctx.store.session, session_id)
        )
        if session_id is None or summary is None:
            return self._render(request, "error.html", 404, message="No such session.")
        store = self.ctx.store

        async def lines() -> Any:
            offset = 0
            while True:
                texts = await run_in_threadpool(
                    store.window, session_id, offset=offset, limit=_EXPORT_BATCH
                )
                if not texts:
                    return
                yield b"".join(dump_line(orjson.loads(text)) for text in texts)
                offset += len(texts)

        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="{session_id}.jsonl"',
                "Cache-Control": "no-store",
            },
        )
