"""One request and its reply, whatever carries them: the routes' view of a request.

An :class:`Exchange` holds the parsed request (method, raw path, query,
headers, peer), the reply helpers, the store access and the credentials
check. Two HTTP front ends create them: :mod:`._http` (the server's own
HTTP/1.1 protocol) and :mod:`._asgi` (any ASGI server). Each hands in a
:class:`Responder` that puts the reply on its wire and a body reader.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qs, unquote

import orjson

from .._session_id import validate_session_id
from ..errors import InvalidSessionIdError
from . import _routes as routes
from ._metrics import ACCESS_LOGGER, access_line
from ._state import RequestRecord
from ._wire import ERROR_TYPES, ClientGone, Reply, http_date
from .store import AppendRequest, AppendResult, Scope, UnknownEntryError

if TYPE_CHECKING:
    from ._asgi import IngressApp

__all__ = [
    "DRAIN_LIMIT",
    "READ_HEADERS",
    "SESSION_PREFIX",
    "UNRECORDED",
    "Exchange",
    "Responder",
    "bearer_of",
    "check_length",
    "is_api_path",
    "same_secret",
]

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
_JSON = b"application/json"
#: Sent with every 401 (RFC 9110 requires the challenge).
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="session-ingress"'}


#: The request headers the routes read (lower-case), by their wire name.
READ_HEADERS = {
    name.encode(): name
    for name in (
        "authorization",
        "content-length",
        "content-type",
        "expect",
        "last-uuid",
        "x-organization-uuid",
    )
}


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of a header value (latin-1 text) and a secret."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def bearer_of(headers: dict[str, str]) -> str | None:
    """The bearer token of a request's Authorization header, if it has one."""
    value = headers.get("authorization", "")
    if value[:7].lower() != "bearer ":
        return None
    return value[7:].strip() or None


def is_api_path(path: str) -> bool:
    """A path of the protocol or of operations (never handed to the viewer)."""
    return path.startswith("/v1/") or path in UNRECORDED


def check_length(headers: dict[str, str], limit: int) -> int | None:
    """The declared body length, checked before the body is read.

    Raises :class:`Reply` 400 for a Content-Length that is not a number and
    413 above ``limit``; its ``close`` is set when the connection cannot be
    kept: without ``Expect: 100-continue`` the unread body is discarded and
    the connection stays usable; with it the client waits for a 100 that
    never comes, and a body above :data:`DRAIN_LIMIT` is not worth reading.
    """
    length = headers.get("content-length")
    if length is None:
        return None
    length = length.strip()
    if not (length.isascii() and length.isdigit()):
        raise Reply(400, "Content-Length must be a non-negative integer", close=True)
    size = int(length)
    if size > limit:
        close = "100-continue" in headers.get("expect", "").lower() or size > DRAIN_LIMIT
        raise Reply(413, f"request body exceeds {limit} bytes", close=close)
    return size


class Responder(Protocol):
    """Where an exchange's reply goes (one per request, from its HTTP front end)."""

    async def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool
    ) -> None:
        """Send the whole reply; ``close``: end the connection after it."""
        ...

    def drop(self) -> None:
        """Close the connection without a byte of reply (RuntimeError if impossible)."""
        ...

    def queued(self) -> None:
        """The request's append waits in the group commit (later requests may go on)."""
        ...

    def finished(self) -> None:
        """The exchange is over (replied, dropped, or the client went away)."""
        ...

    def dropped(self) -> bool:
        """True once the server dropped the connection (a lost-reply fault on an
        earlier request): the requests behind that one are lost with it."""
        ...


class Exchange:
    """One request and its reply."""

    def __init__(
        self,
        app: IngressApp,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        peer: str | None,
        responder: Responder,
        read_body: Callable[[], Awaitable[bytes | None]],
        *,
        after: asyncio.Future[None] | None = None,
    ) -> None:
        """``path`` is the raw (still percent-encoded) path; ``headers`` has
        lower-case names, the first of repeated ones (the front end may keep
        only the :data:`READ_HEADERS`); ``read_body`` returns
        the body (None: the client went away); ``after`` is done once the
        previous request on the connection queued its append or finished."""
        self.app = app
        self.state = app.state
        self.t = time.monotonic()
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.peer = peer
        self.responder = responder
        self._read_body = read_body
        self._after = after
        self.status: int | None = None
        self.size = 0
        self.fault: str | None = None
        self.session_id: str | None = None
        self.entry_uuid: str | None = None
        self.route = "other"
        self.close = False
        #: Later requests on the connection wait until this one ends (its
        #: reply is to be dropped, and the requests behind it with it).
        self.hold_order = False
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
        except ClientGone:  # never handled: not counted, not recorded
            self.accounted = True
            self.unrecorded = False
            return
        except Reply as reply:
            self.close = self.close or reply.close
            await self.send_error(reply.status, reply.message, reply.headers)
        except Exception:
            logger.exception("ingress server: unexpected error")
            self.close = True
            await self.send_error(500, "internal server error")
        finally:
            self._record()
            self._account()
            self.responder.finished()

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
            ACCESS_LOGGER.info(
                access_line(
                    method=self.method,
                    path=self.path,
                    status=self.status,
                    seconds=seconds,
                    size=self.size,
                    peer=self.peer,
                    fault=self.fault,
                )
            )

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
            (b"date", http_date()),
            (
                b"content-type",
                _JSON if content_type == "application/json" else content_type.encode(),
            ),
            (b"content-length", b"%d" % len(body)),
        ]
        if headers:
            raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if self.close:
            raw.append((b"connection", b"close"))
        try:
            await self.responder.respond(status, raw, body, close=self.close)
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
        self.responder.drop()

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

    async def append(self, request: AppendRequest) -> AppendResult:
        """Append in the loop's next group commit; 503 when its transaction fails."""
        after = self._after
        if after is not None and not after.done():
            # keep a connection's pipelined appends in their order on the wire
            await after
        if self.responder.dropped():
            raise ClientGone  # an earlier request's reply was dropped: this one is lost with it
        waiting = self.app.group_commit.submit(request)
        if not self.hold_order:
            self.responder.queued()
        try:
            return await waiting
        except Exception:
            self.state.metrics.store_error()
            logger.exception("ingress server: the store failed")
            raise Reply(503, "the store is unavailable", {"Retry-After": "1"}) from None

    # --- auth -----------------------------------------------------------------

    def bearer(self) -> str | None:
        return bearer_of(self.headers)

    async def authorize(self, needed: Scope, *, oauth: bool = False) -> None:
        """The dev token has every scope; named tokens their own; OAuth reads need the org."""
        state = self.state
        bearer = self.bearer()
        if bearer is None:
            raise Reply(401, "missing bearer token", dict(_CHALLENGE))
        if state.token is not None and same_secret(bearer, state.token):
            return
        if oauth and same_secret(bearer, state.oauth_token):
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
        if org is None or (expected is not None and not same_secret(org, expected)):
            raise Reply(403, "x-organization-uuid is missing or not this token's organization")

    def require_oauth(self) -> None:
        bearer = self.bearer()
        if bearer is None:
            raise Reply(401, "missing bearer token", dict(_CHALLENGE))
        if not same_secret(bearer, self.state.oauth_token):
            raise Reply(401, "invalid bearer token", dict(_CHALLENGE))
        self.check_org()
