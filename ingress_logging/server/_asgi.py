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
import contextlib
import functools
import hmac
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import orjson

from .._session_id import validate_session_id
from ..errors import InvalidSessionIdError
from . import _routes as routes
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
#: An oversize body up to this size is discarded and the connection kept.
DRAIN_LIMIT = 64 * 1024 * 1024
#: Sent with every 401 (RFC 9110 requires the challenge).
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="session-ingress"'}


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode())
    return _date_cache[1]


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of a header value (latin-1 text) and a secret."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


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
        await Exchange(self, scope, receive, send).run()


class Exchange:
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
        self.accounted = False

    # --- the request ----------------------------------------------------------

    async def run(self) -> None:
        state = self.state
        try:
            if self.path == "/healthz":
                await routes.healthz(self)
                return
            if self.path == "/metrics":
                self.only("GET")
                await self.send(200, state.metrics.render().encode(), content_type="text/plain")
                return
            body = await self._read_body()
            if body is None:  # the client went away mid-body: nobody to answer
                return
            if self.path == ADMIN_FAULTS:
                await routes.admin(self, body)
                return
            if state.faults.latency:
                await self.app.wait(state.faults.latency)
            await self._route(body)
        except Reply as reply:
            await self.send_error(reply.status, reply.message, reply.headers)
        except Exception:
            logger.exception("ingress server: unexpected error")
            self.close = True
            await self.send_error(500, "internal server error")
        finally:
            self._record()
            self._account()

    def _account(self) -> None:
        """Count the request in the metrics and write its access-log line, once.

        Called just before the reply goes out (so a client holding its answer
        finds both), or at the end for a request that got none.
        """
        if self.accounted:
            return
        self.accounted = True
        state = self.state
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
                await routes.put(self, sid, body)
            elif self.method == "DELETE":
                self.route = "delete"
                await routes.delete(self, sid)
            else:
                self.route = "read"
                await routes.read(self, sid)
            return
        if path == SESSIONS_PATH:
            self.route = "sessions"
            self.only("GET")
            await routes.sessions(self)
            return
        if path.startswith(CODE_PREFIX) and path.endswith(TELEPORT_SUFFIX):
            raw = path[len(CODE_PREFIX) : -len(TELEPORT_SUFFIX)]
            self.route = "teleport"
            await routes.teleport(self, self._session_from(raw, ("GET",)))
            return
        raise Reply(404, f"no route for {path[:200]!r}")

    def only(self, *methods: str) -> None:
        if self.method not in methods:
            raise Reply(405, f"{self.method} not allowed", {"Allow": ", ".join(methods)})

    def _session_from(self, raw: str, methods: tuple[str, ...]) -> str:
        if "/" in raw:
            raise Reply(404, "no such route")
        self.only(*methods)
        try:
            sid = validate_session_id(unquote(raw, errors="strict"))
        except (InvalidSessionIdError, UnicodeDecodeError) as exc:
            raise Reply(400, f"invalid session id: {exc}") from None
        self.session_id = sid
        return sid

    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    # --- replies --------------------------------------------------------------

    async def send(
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
        self._account()
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

    async def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        await self.send(status, orjson.dumps(obj), headers)

    async def send_error(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        error = {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error")}}
        await self.send_json(status, error, headers)

    def drop(self) -> None:
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

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
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

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, credential = value.partition(" ")
        return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None

    async def authorize(self, needed: Scope, *, oauth: bool = False) -> None:
        """The dev token has every scope; named tokens their own; OAuth reads need the org."""
        state = self.state
        bearer = self.bearer()
        if bearer is None:
            raise Reply(401, "missing bearer token", dict(_CHALLENGE))
        if state.token is not None and _same(bearer, state.token):
            return
        if oauth and _same(bearer, state.oauth_token):
            self.check_org()
            return
        row = await self.call(state.store.verify_token, bearer)
        if row is None:
            raise Reply(401, "missing or invalid bearer token", dict(_CHALLENGE))
        if not row.allows(needed):
            raise Reply(403, f"this token lacks the {needed} scope")

    def check_org(self) -> None:
        org = self.headers.get("x-organization-uuid")
        expected = self.state.org_uuid
        if org is None or (expected is not None and not _same(org, expected)):
            raise Reply(403, "x-organization-uuid is missing or not this token's organization")

    def require_oauth(self) -> None:
        bearer = self.bearer()
        if bearer is None:
            raise Reply(401, "missing bearer token", dict(_CHALLENGE))
        if not _same(bearer, self.state.oauth_token):
            raise Reply(401, "invalid bearer token", dict(_CHALLENGE))
        self.check_org()
