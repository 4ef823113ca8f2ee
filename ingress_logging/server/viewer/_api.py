"""The JSON and server-sent-event endpoints behind the pages' scripts.

Every answer needs the sign-in cookie (401 JSON without it). Entries go out
as parsed JSON inside a JSON document with ``nosniff``: the browser never
treats their content as markup; the scripts put it in the page with
``textContent`` only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Final

import anyio
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..._entry_filter import EntryFilter
from ..._session_id import validate_session_id
from ...errors import InvalidSessionIdError
from ._context import ViewerContext
from ._entries import MAX_LIMIT, chain_heads, chain_items, heads_before, parse_entry, read_slice
from ._security import signed_in

__all__ = ["Api"]

_LIVE_BATCH: Final = 500
#: A comment line this often keeps proxies from closing a quiet stream.
_KEEPALIVE_SECONDS: Final = 15.0


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(value),
        status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _error(status: int, message: str) -> Response:
    return _json({"error": {"message": message}}, status)


def _int(value: str | None, default: int, *, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{value[:40]!r} is not a non-negative integer")
    return max(low, min(int(value), high))


def filter_from_query(query: Any) -> EntryFilter:
    """The session page's filter bar: ``type`` (repeatable), ``level``, ``q``."""
    types = frozenset(t for t in query.getlist("type") if t)
    level = query.get("level") or None
    text = query.get("q") or ""
    grep = re.compile(re.escape(text), re.IGNORECASE) if text else None
    return EntryFilter(types=types, min_level=level, grep=grep)


class Api:
    """Route handlers for ``/api/...``."""

    def __init__(self, context: ViewerContext) -> None:
        self.ctx = context

    async def sessions(self, request: Request) -> Response:
        if not signed_in(request, self.ctx.signer):
            return _error(401, "sign in first")
        query = request.query_params
        try:
            limit = _int(query.get("limit"), self.ctx.sessions_per_page, low=1, high=MAX_LIMIT)
            page = await run_in_threadpool(
                self.ctx.store.list_sessions,
                prefix=query.get("prefix", ""),
                limit=limit,
                cursor=query.get("cursor") or None,
            )
        except ValueError as exc:
            return _error(400, str(exc))
        return _json(
            {
                "sessions": [
                    {
                        "id": s.id,
                        "entries": s.entries,
                        "first_activity": s.first_activity,
                        "last_activity": s.last_activity,
                    }
                    for s in page.sessions
                ],
                "next_cursor": page.next_cursor,
            }
        )

    def _session_id(self, request: Request) -> str | None:
        try:
            return validate_session_id(request.path_params["session_id"])
        except InvalidSessionIdError:
            return None

    async def entries(self, request: Request) -> Response:
        if not signed_in(request, self.ctx.signer):
            return _error(401, "sign in first")
        session_id = self._session_id(request)
        if session_id is None:
            return _error(404, "no such session")
        query = request.query_params
        try:
            offset = _int(query.get("offset"), 0, low=0, high=2**62)
            limit = _int(query.get("limit"), self.ctx.entries_per_page, low=1, high=MAX_LIMIT)
            entry_filter = filter_from_query(query)
        except ValueError as exc:
            return _error(400, str(exc))
        result = await run_in_threadpool(
            read_slice,
            self.ctx.store,
            session_id,
            offset=offset,
            limit=limit,
            entry_filter=entry_filter,
            around=query.get("around") or None,
        )
        if result is None:
            return _error(404, "no such session")
        return _json(result.as_json())

    async def live(self, request: Request) -> Response:
        """Server-sent events: each entry stored from position ``from`` on, as it arrives.

        Event ids are positions, so a reconnecting ``EventSource`` (which
        sends ``Last-Event-ID``) resumes where it left off, with no repeats.
        """
        if not signed_in(request, self.ctx.signer):
            return _error(401, "sign in first")
        session_id = self._session_id(request)
        if session_id is None:
            return _error(404, "no such session")
        try:
            start = _int(
                request.headers.get("last-event-id") or request.query_params.get("from"),
                0,
                low=0,
                high=2**62,
            )
        except ValueError as exc:
            return _error(400, str(exc))
        if await run_in_threadpool(self.ctx.store.session, session_id) is None:
            return _error(404, "no such session")
        return StreamingResponse(
            self._stream(session_id, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, session_id: str, position: int) -> AsyncIterator[bytes]:
        store = self.ctx.store
        heads = await run_in_threadpool(heads_before, store, session_id, position)
        yield b"retry: 2000\n\n"
        quiet = 0.0
        while not self.ctx.stopping.is_set():
            summary = await run_in_threadpool(store.session, session_id)
            if summary is None:  # deleted while watched
                yield b"event: gone\ndata: {}\n\n"
                return
            if summary.entries > position:
                texts = await run_in_threadpool(
                    store.window, session_id, offset=position, limit=_LIVE_BATCH
                )
                items = chain_items([parse_entry(t) for t in texts or []], position, heads)
                chunks = []
                for item in items:
                    data = orjson.dumps({**item.as_json(), "total": summary.entries})
                    chunks.append(b"id: %d\nevent: entry\ndata: %s\n\n" % (item.index + 1, data))
                if items:
                    heads = chain_heads(items, heads)
                    position += len(items)
                    quiet = 0.0
                    yield b"".join(chunks)
                    continue
            if quiet >= _KEEPALIVE_SECONDS:
                quiet = 0.0
                yield b": keep-alive\n\n"
            await anyio.sleep(self.ctx.live_interval)
            quiet += self.ctx.live_interval
