"""The session-ingress server as an ASGI application: routes and protocol rules.

Routes (everything else is a 404, a known path with another method a 405;
every error reply is JSON ``{"error": {"message": ..., "type": ...}}``)::

    PUT    /v1/session_ingress/session/{sid}        append          (append scope)
    GET    /v1/session_ingress/session/{sid}        read, ?after=   (read scope, or OAuth)
    DELETE /v1/session_ingress/session/{sid}        delete          (admin scope)
    GET    /v1/session_ingress/sessions             list sessions   (read scope)
    GET    /v1/code/sessions/{sid}/teleport-events  events          (OAuth bearer)
    GET|POST|DELETE /_admin/faults                  fault switches  (admin scope)
    GET    /healthz, /metrics                       operations      (no credentials)

Every request is fully validated (auth, framing, content type, JSON shape,
session id) before anything is stored, so bad input gets a 4xx and leaves
the store untouched. :class:`IngressApp` can be mounted in any ASGI server;
the lost-reply fault needs the ``ingress_logging.drop`` extension that
:mod:`._runner` adds (elsewhere that fault answers 500 instead).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import orjson

from .._session_id import validate_session_id
from ..errors import InvalidSessionIdError
from ._faults import FaultDecision
from ._metrics import ACCESS_LOGGER, access_line
from ._runner import DROP_EXTENSION
from ._state import RequestRecord, ServerState
from ._wire import ERROR_TYPES, Reply
from .store import Scope, UnknownEntryError

__all__ = ["IngressApp"]

logger = logging.getLogger("ingress_logging.server")
T = TypeVar("T")

SESSION_PREFIX = "/v1/session_ingress/session/"
SESSIONS_PATH = "/v1/session_ingress/sessions"
CODE_PREFIX = "/v1/code/sessions/"
TELEPORT_SUFFIX = "/teleport-events"
ADMIN_FAULTS = "/_admin/faults"
UNRECORDED = (ADMIN_FAULTS, "/healthz", "/metrics")
MAX_PAGE = 1000
MAX_SESSIONS_PAGE = 1000
MAX_UUID_LENGTH = 256
#: An oversize body up to this size is discarded and the connection kept.
DRAIN_LIMIT = 64 * 1024 * 1024
_UUID_CHARS = re.compile(rf"[\x21-\x7e]{{1,{MAX_UUID_LENGTH}}}")
#: Sent with every 401 (RFC 9110 requires the challenge).
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="session-ingress"'}


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


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode())
    return _date_cache[1]


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of a header value (latin-1 text) and a secret."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _positive(raw: str, what: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise Reply(400, f"{what} must be a positive integer")
    return int(raw)


class IngressApp:
    """ASGI 3 application over one :class:`ServerState`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._stop_event: asyncio.Event | None = None
        self._stopping = False

    def stopping(self) -> None:
        """The server is stopping: cut injected latency waits short (call on the loop)."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` unless the server stops first."""
        if self._stopping:
            return
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"]
                await send({"type": kind + ".complete"})
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        await _Exchange(self, scope, receive, send).run()


class _Exchange:
    """One request and its reply."""

    def __init__(self, app: IngressApp, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.app = app
        self.state = app.state
        self.scope = scope
        self.receive = receive
        self._send_message = send
        self.t = time.monotonic()
        self.method: str = scope["method"]
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        self.path = raw.decode("latin-1")
        self.query = scope.get("query_string", b"").decode("latin-1")
        self.headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            if key not in self.headers:
                self.headers[key] = value.decode("latin-1")
        self.status: int | None = None
        self.size = 0
        self.fault: str | None = None
        self.session_id: str | None = None
        self.entry_uuid: str | None = None
        self.route = "other"
        self.close = False
        self.unrecorded = self.path not in UNRECORDED

    # --- the request ----------------------------------------------------------

    async def run(self) -> None:
        state = self.state
        try:
            if self.path == "/healthz":
                await self._healthz()
                return
            if self.path == "/metrics":
                self._only("GET")
                await self._send(200, state.metrics.render().encode(), content_type="text/plain")
                return
            body = await self._read_body()
            if body is None:  # the client went away mid-body: nobody to answer
                return
            if self.path == ADMIN_FAULTS:
                await self._admin(body)
                return
            if state.faults.latency:
                await self.app.wait(state.faults.latency)
            await self._route(body)
        except Reply as reply:
            await self._send_error(reply.status, reply.message, reply.headers)
        except Exception:
            logger.exception("ingress server: unexpected error")
            self.close = True
            await self._send_error(500, "internal server error")
        finally:
            self._record()
            seconds = time.monotonic() - self.t
            if self.path not in UNRECORDED:
                state.metrics.observe(self.route, self.status, seconds)
            # state.access_log, not logger.isEnabledFor: that takes the logging
            # module lock when its cache is cold, and an app may hold that lock
            # while it waits for this server (dictConfig flushing handlers).
            if state.access_log:
                client = self.scope.get("client")
                ACCESS_LOGGER.info(
                    access_line(
                        method=self.method,
                        path=self.path,
                        status=self.status,
                        seconds=seconds,
                        size=self.size,
                        peer=None if not client else str(client[0]),
                        fault=self.fault,
                    )
                )

    async def _read_body(self) -> bytes | None:
        limit = self.state.max_body_bytes
        length = self.headers.get("content-length")
        if length is not None:
            length = length.strip()
            if not (length.isascii() and length.isdigit()):
                self.close = True
                raise Reply(400, "Content-Length must be a non-negative integer")
            if int(length) > limit:
                # Without Expect the parser discards the unread body and the
                # connection stays usable; with it the client waits for a 100
                # that never comes, so the connection must end.
                if "100-continue" in self.headers.get("expect", "").lower() or (
                    int(length) > DRAIN_LIMIT
                ):
                    self.close = True
                raise Reply(413, f"request body exceeds {limit} bytes")
            if int(length) == 0:
                return b""
        parts: list[bytes] = []
        total = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.close = True
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise Reply(413, f"request body exceeds {limit} bytes")
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _route(self, body: bytes) -> None:
        path = self.path
        if path.startswith(SESSION_PREFIX):
            sid = self._session_from(path[len(SESSION_PREFIX) :], ("GET", "PUT", "DELETE"))
            if self.method == "PUT":
                self.route = "append"
                await self._put(sid, body)
            elif self.method == "DELETE":
                self.route = "delete"
                await self._delete(sid)
            else:
                self.route = "read"
                await self._read(sid)
            return
        if path == SESSIONS_PATH:
            self.route = "sessions"
            self._only("GET")
            await self._sessions()
            return
        if path.startswith(CODE_PREFIX) and path.endswith(TELEPORT_SUFFIX):
            raw = path[len(CODE_PREFIX) : -len(TELEPORT_SUFFIX)]
            self.route = "teleport"
            await self._teleport(self._session_from(raw, ("GET",)))
            return
        raise Reply(404, f"no route for {path[:200]!r}")

    def _only(self, *methods: str) -> None:
        if self.method not in methods:
            raise Reply(405, f"{self.method} not allowed", {"Allow": ", ".join(methods)})

    def _session_from(self, raw: str, methods: tuple[str, ...]) -> str:
        if "/" in raw:
            raise Reply(404, "no such route")
        self._only(*methods)
        try:
            sid = validate_session_id(unquote(raw, errors="strict"))
        except (InvalidSessionIdError, UnicodeDecodeError) as exc:
            raise Reply(400, f"invalid session id: {exc}") from None
        self.session_id = sid
        return sid

    def _params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    # --- replies --------------------------------------------------------------

    async def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        content_type: str = "application/json",
    ) -> None:
        """Record the request, then send the whole reply."""
        self.status = status
        self.size = len(body)
        self._record()
        raw = [
            (b"date", _http_date()),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        if self.close:
            raw.append((b"connection", b"close"))
        try:
            await self._send_message(
                {"type": "http.response.start", "status": status, "headers": raw}
            )
            await self._send_message({"type": "http.response.body", "body": body})
        except OSError:  # the client is gone
            self.status = None

    async def _send_json(
        self, status: int, obj: Any, headers: dict[str, str] | None = None
    ) -> None:
        await self._send(status, orjson.dumps(obj), headers)

    async def _send_error(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        error = {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error")}}
        await self._send_json(status, error, headers)

    def _drop(self) -> None:
        """Close the TCP connection without sending a single byte."""
        self.status = None
        self._record()
        drop = self.scope.get("extensions", {}).get(DROP_EXTENSION)
        if drop is None:
            raise RuntimeError("this ASGI server cannot close a connection without a reply")
        drop()

    def _record(self) -> None:
        """Record this request once (not admin, health or metrics requests)."""
        if not self.unrecorded:
            return
        self.unrecorded = False
        if self.state.record is None:
            return
        self.state.record(
            RequestRecord(
                self.method,
                self.path,
                self.session_id,
                self.headers.get("last-uuid") or None,
                self.status,
                self.t,
                self.fault,
                self.entry_uuid,
                self.query,
            )
        )

    # --- the store --------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call (on a worker thread for a pooled store); 503 when it fails."""
        try:
            if self.state.store.concurrent:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))
            return fn(*args, **kwargs)
        except (UnknownEntryError, ValueError):
            raise
        except Exception:
            self.state.metrics.store_error()
            logger.exception("ingress server: the store failed")
            raise Reply(503, "the store is unavailable", {"Retry-After": "1"}) from None

    # --- auth -----------------------------------------------------------------

    def _bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None

    async def _authorize(self, needed: Scope, *, oauth: bool = False) -> None:
        """The dev token has every scope; named tokens their own; OAuth reads need the org."""
        state = self.state
        bearer = self._bearer()
        if bearer is None:
            raise Reply(401, "missing bearer token", dict(_CHALLENGE))
        if state.token is not None and _same(bearer, state.token):
            return
        if oauth and _same(bearer, state.oauth_token):
            self._check_org()
            return
        row = await self._call(state.store.verify_token, bearer)
        if row is None:
            raise Reply(401, "missing or invalid bearer token", dict(_CHALLENGE))
        if not row.allows(needed):
            raise Reply(403, f"this token lacks the {needed} scope")

    def _check_org(self) -> None:
        org = self.headers.get("x-organization-uuid")
        expected = self.state.org_uuid
        if org is None or (expected is not None and not _same(org, expected)):
            raise Reply(403, "x-organization-uuid is missing or not this token's organization")

    def _require_oauth(self) -> None:
        bearer = self._bearer()
        if bearer is None:
            raise Reply(401, "missing bearer token", dict(_CHALLENGE))
        if not _same(bearer, self.state.oauth_token):
            raise Reply(401, "invalid bearer token", dict(_CHALLENGE))
        self._check_org()

    # --- faults ---------------------------------------------------------------

    async def _pre_faults(self, method: str, sid: str) -> FaultDecision:
        """Consume this request's fault; answer here if it replaces the handling."""
        decision = self.state.faults.decide(method, sid)
        self.fault = decision.name
        if decision.foreign_write:
            await self._call(self.state.store.append_foreign, sid)
        if decision.reply_status is not None:
            headers = {}
            if decision.retry_after is not None:
                headers["Retry-After"] = _retry_after(decision.retry_after)
            raise Reply(decision.reply_status, "injected fault", headers)
        return decision

    async def _post_faults(self, decision: FaultDecision) -> bool:
        """Apply an after-commit fault; True when it replaced the reply."""
        if decision.after_commit == "drop":
            self._drop()
            return True
        if decision.after_commit == "error":
            await self._send_error(decision.after_commit_status, "injected fault after commit")
            return True
        return False

    # --- routes ---------------------------------------------------------------

    async def _put(self, sid: str, body: bytes) -> None:
        await self._authorize("append")
        content_type = self.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
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
        self.entry_uuid = entry_uuid
        last_uuid = self.headers.get("last-uuid") or None
        decision = await self._pre_faults("PUT", sid)
        result = await self._call(self.state.store.append, sid, entry, text, last_uuid)
        if await self._post_faults(decision):
            return
        if result.stored:
            await self._send_json(result.status, {"stored": True, "head": result.head})
            return
        headers = {}
        if result.head is not None and not self.state.faults.omit_conflict_head:
            headers["x-last-uuid"] = result.head
        message = "Last-Uuid does not match the session head, or the uuid is already stored"
        raise Reply(409, message, headers)

    async def _read(self, sid: str) -> None:
        await self._authorize("read", oauth=True)
        query = self._params()
        flag = query.get("after_last_compact", ["false"])[-1].lower()
        if flag not in ("true", "1", "false", "0"):
            raise Reply(400, "after_last_compact must be true or false")
        after = query.get("after", [None])[-1]
        decision = await self._pre_faults("GET", sid)
        try:
            lines = await self._call(
                self.state.store.loglines,
                sid,
                after_last_compact=flag in ("true", "1"),
                after=after,
            )
        except UnknownEntryError:
            raise Reply(400, "after= names no entry of this session") from None
        if await self._post_faults(decision):
            return
        if lines is None:
            raise Reply(404, "session not found")
        await self._send(200, b'{"loglines":[' + ",".join(lines).encode() + b"]}")

    async def _delete(self, sid: str) -> None:
        await self._authorize("admin")
        if not await self._call(self.state.store.delete_session, sid):
            raise Reply(404, "session not found")
        await self._send_json(200, {"deleted": True, "id": sid})

    async def _sessions(self) -> None:
        await self._authorize("read", oauth=True)
        query = self._params()
        prefix = query.get("prefix", [""])[-1]
        if len(prefix) > 256:
            raise Reply(400, "prefix is longer than a session id can be")
        limit = min(_positive(query.get("limit", ["100"])[-1], "limit"), MAX_SESSIONS_PAGE)
        cursor = query.get("cursor", [None])[-1]
        try:
            page = await self._call(
                self.state.store.list_sessions, prefix=prefix, limit=limit, cursor=cursor
            )
        except ValueError as exc:
            raise Reply(400, str(exc)) from None
        await self._send_json(
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

    async def _teleport(self, sid: str) -> None:
        self._require_oauth()
        query = self._params()
        limit = min(_positive(query.get("limit", [str(MAX_PAGE)])[-1], "limit"), MAX_PAGE)
        cursor = query.get("cursor", [None])[-1]
        after = 0 if cursor is None else _decode_cursor(cursor)
        decision = await self._pre_faults("GET", sid)
        rows = await self._call(self.state.store.events_page, sid, after, limit + 1)
        if await self._post_faults(decision):
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
        if more or self.state.faults.endless_teleport_cursor:
            page["next_cursor"] = _encode_cursor(rows[-1].id if rows else after)
        await self._send_json(200, page)

    async def _admin(self, body: bytes) -> None:
        self._only("GET", "POST", "DELETE")
        await self._authorize("admin")
        faults = self.state.faults
        if self.method == "POST":
            content_type = self.headers.get("content-type", "")
            if content_type.split(";", 1)[0].strip().lower() != "application/json":
                raise Reply(400, "Content-Type must be application/json")
            try:
                spec = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
                faults.configure(spec)
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise Reply(400, f"bad fault spec: {str(exc)[:300]}") from None
        elif self.method == "DELETE":
            faults.reset()
        await self._send_json(200, faults.snapshot())

    async def _healthz(self) -> None:
        self._only("GET", "HEAD")
        try:
            await self._call(self.state.store.healthcheck)
        except Reply:
            await self._send_json(503, {"status": "unavailable"})
            return
        await self._send_json(200, {"status": "ok"})
