"""The routes of the session-ingress server: the protocol's rules, one function each.

Each takes the :class:`~._asgi.Exchange` of one request (its parsed request,
its reply helpers, its store access and its credentials check) and either
replies or raises :class:`Reply`. Faults are applied here, after
authentication and validation, so a 401/400/413 is never masked by one.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

import orjson

from ._faults import FaultDecision, FaultInjector
from ._wire import Reply
from .store import AppendRequest, AppendResult, UnknownEntryError

if TYPE_CHECKING:
    from ._exchange import Exchange

__all__ = [
    "CONFLICT",
    "admin",
    "append_request",
    "conflict_headers",
    "delete",
    "healthz",
    "put",
    "read",
    "sessions",
    "teleport",
]

MAX_PAGE = 1000
MAX_SESSIONS_PAGE = 1000
MAX_UUID_LENGTH = 256
_UUID_CHARS = re.compile(rf"[\x21-\x7e]{{1,{MAX_UUID_LENGTH}}}")


def _encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(f"e:{event_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        digits = text[2:]
        if not text.startswith("e:") or not (digits.isascii() and digits.isdigit()):
            raise ValueError(cursor)
        if len(digits) > 18:  # 64-bit integers in the database; our ids never get this long
            raise ValueError(cursor)
        return int(digits)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Reply(400, "cursor is not one this server issued") from None


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _positive(raw: str, what: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise Reply(400, f"{what} must be a positive integer")
    return int(raw)


# --- faults ----------------------------------------------------------------------


async def pre_faults(ex: Exchange, method: str, sid: str) -> FaultDecision:
    """Consume this request's fault; answer here if it replaces the handling."""
    decision = ex.state.faults.decide(method, sid)
    ex.fault = decision.name
    if decision.foreign_write:
        await ex.call(ex.state.store.append_foreign, sid)
    if decision.reply_status is not None:
        headers = {}
        if decision.retry_after is not None:
            headers["Retry-After"] = _retry_after(decision.retry_after)
        raise Reply(decision.reply_status, "injected fault", headers)
    return decision


async def post_faults(ex: Exchange, decision: FaultDecision) -> bool:
    """Apply an after-commit fault; True when it replaced the reply."""
    if decision.after_commit == "drop":
        ex.drop()
        return True
    if decision.after_commit == "error":
        await ex.send_error(decision.after_commit_status, "injected fault after commit")
        return True
    return False


# --- routes ----------------------------------------------------------------------


CONFLICT = "Last-Uuid does not match the session head, or the uuid is already stored"


def append_request(sid: str, headers: dict[str, str], body: bytes) -> AppendRequest:
    """The append a PUT asks for, its body and headers checked (else a 400 Reply)."""
    content_type = headers.get("content-type", "")
    if (
        content_type != "application/json"
        and content_type.split(";", 1)[0].strip().lower() != "application/json"
    ):
        raise Reply(400, "Content-Type must be application/json")
    try:
        text = body.decode("utf-8")
        # orjson, as the library's reader uses: what it cannot read back (NaN,
        # 1e400, a lone surrogate escape) would make the whole session unreadable.
        entry = orjson.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Reply(400, f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(entry, dict):
        raise Reply(400, f"body must be a JSON object, not {type(entry).__name__}")
    entry_uuid = entry.get("uuid")
    if entry_uuid is not None and (
        not isinstance(entry_uuid, str) or _UUID_CHARS.fullmatch(entry_uuid) is None
    ):
        # It may be echoed in x-last-uuid: no spaces, no CR/LF, no non-ASCII.
        raise Reply(400, "uuid must be 1 to 256 printable ASCII characters, no spaces")
    return AppendRequest(sid, entry, text, headers.get("last-uuid") or None)


def conflict_headers(result: AppendResult, faults: FaultInjector) -> dict[str, str]:
    """The headers of a 409: the head it names, unless a fault hides it."""
    if result.head is not None and not faults.omit_conflict_head:
        return {"x-last-uuid": result.head}
    return {}


async def put(ex: Exchange, sid: str, body: bytes) -> None:
    await ex.authorize("append")
    request = append_request(sid, ex.headers, body)
    ex.entry_uuid = request.uuid
    decision = await pre_faults(ex, "PUT", sid)
    if decision.after_commit is not None:
        ex.hold_order = True
    result = await ex.append(request)
    if await post_faults(ex, decision):
        return
    if result.stored:
        await ex.send_json(result.status, {"stored": True, "head": result.head})
        return
    raise Reply(409, CONFLICT, conflict_headers(result, ex.state.faults))


async def read(ex: Exchange, sid: str) -> None:
    await ex.authorize("read", oauth=True)
    query = ex.params()
    flag = query.get("after_last_compact", ["false"])[-1].lower()
    if flag not in ("true", "1", "false", "0"):
        raise Reply(400, "after_last_compact must be true or false")
    after = query.get("after", [None])[-1]
    decision = await pre_faults(ex, "GET", sid)
    try:
        lines = await ex.call(
            ex.state.store.loglines,
            sid,
            after_last_compact=flag in ("true", "1"),
            after=after,
        )
    except UnknownEntryError:
        raise Reply(400, "after= names no entry of this session") from None
    if await post_faults(ex, decision):
        return
    if lines is None:
        raise Reply(404, "session not found")
    await ex.send(200, b'{"loglines":[' + ",".join(lines).encode() + b"]}")


async def delete(ex: Exchange, sid: str) -> None:
    await ex.authorize("admin")
    if not await ex.call(ex.state.store.delete_session, sid):
        raise Reply(404, "session not found")
    await ex.send_json(200, {"deleted": True, "id": sid})


async def sessions(ex: Exchange) -> None:
    await ex.authorize("read", oauth=True)
    query = ex.params()
    prefix = query.get("prefix", [""])[-1]
    if len(prefix) > 256:
        raise Reply(400, "prefix is longer than a session id can be")
    limit = min(_positive(query.get("limit", ["100"])[-1], "limit"), MAX_SESSIONS_PAGE)
    cursor = query.get("cursor", [None])[-1]
    try:
        page = await ex.call(
            ex.state.store.list_sessions, prefix=prefix, limit=limit, cursor=cursor
        )
    except ValueError as exc:
        raise Reply(400, str(exc)) from None
    await ex.send_json(
        200,
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
        },
    )


async def teleport(ex: Exchange, sid: str) -> None:
    ex.require_oauth()
    query = ex.params()
    limit = min(_positive(query.get("limit", [str(MAX_PAGE)])[-1], "limit"), MAX_PAGE)
    cursor = query.get("cursor", [None])[-1]
    after = 0 if cursor is None else _decode_cursor(cursor)
    decision = await pre_faults(ex, "GET", sid)
    rows = await ex.call(ex.state.store.events_page, sid, after, limit + 1)
    if await post_faults(ex, decision):
        return
    if rows is None:
        raise Reply(404, "session not found")
    more = len(rows) > limit
    rows = rows[:limit]
    page: dict[str, Any] = {
        "data": [
            {
                "event_id": f"evt_{row.id}",
                "event_type": row.event_type,
                "is_compaction": row.is_compaction,
                "payload": None if row.payload is None else json.loads(row.payload),
                "created_at": row.created_at,
            }
            for row in rows
        ]
    }
    if more or ex.state.faults.endless_teleport_cursor:
        page["next_cursor"] = _encode_cursor(rows[-1].id if rows else after)
    await ex.send_json(200, page)


async def admin(ex: Exchange, body: bytes) -> None:
    ex.only("GET", "POST", "DELETE")
    await ex.authorize("admin")
    faults = ex.state.faults
    if ex.method == "POST":
        content_type = ex.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            raise Reply(400, "Content-Type must be application/json")
        try:
            spec = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
            faults.configure(spec)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Reply(400, f"bad fault spec: {str(exc)[:300]}") from None
    elif ex.method == "DELETE":
        faults.reset()
    await ex.send_json(200, faults.snapshot())


async def healthz(ex: Exchange) -> None:
    ex.only("GET", "HEAD")
    try:
        await ex.call(ex.state.store.healthcheck)
    except Reply:
        await ex.send_json(503, {"status": "unavailable"})
        return
    await ex.send_json(200, {"status": "ok"})
