"""HTTP handling of the local session-ingress server: routes and protocol rules.

Routes (everything else is a 404, a known path with another method a 405;
every error reply is JSON ``{"error": {"message": ..., "type": ...}}``)::

    PUT  /v1/session_ingress/session/{sid}                 append (ingress bearer)
    GET  /v1/session_ingress/session/{sid}                 read (ingress or OAuth bearer)
    GET  /v1/code/sessions/{sid}/teleport-events           events (OAuth bearer)
    GET|POST|DELETE /_admin/faults                         fault switches (ingress bearer)

Every request is fully validated (auth, framing, content type, JSON shape,
session id) before anything is stored, so bad input gets a 4xx and leaves
the store untouched.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from .._session_id import validate_session_id
from ..errors import InvalidSessionIdError
from ._faults import FaultDecision
from ._state import RequestRecord, ServerState
from ._wire import ERROR_TYPES, BodyError, Listener, Reply, read_body

__all__ = ["Handler"]

logger = logging.getLogger("ingress_logging.server")

SESSION_PREFIX = "/v1/session_ingress/session/"
CODE_PREFIX = "/v1/code/sessions/"
TELEPORT_SUFFIX = "/teleport-events"
ADMIN_FAULTS = "/_admin/faults"
MAX_PAGE = 1000
MAX_UUID_LENGTH = 256
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
        if len(digits) > 18:  # SQLite integers are 64-bit; our ids never get this long
            raise ValueError(cursor)
        return int(digits)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Reply(400, "cursor is not one this server issued") from None


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of a header value and a secret.

    ``hmac.compare_digest`` raises TypeError for non-ASCII str, and header
    values arrive as latin-1 text, so both sides are compared as bytes.
    """
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive; one method per request."""

    protocol_version = "HTTP/1.1"
    _status: int | None = None
    _fault: str | None = None
    _session_id: str | None = None
    _entry_uuid: str | None = None
    _unrecorded = False
    _t = 0.0
    disable_nagle_algorithm = True
    server_version = "ingress-logging-local"
    sys_version = ""

    # --- connection bookkeeping ---------------------------------------------

    def setup(self) -> None:
        super().setup()
        self._listener.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._listener.untrack(self.connection)

    @property
    def _listener(self) -> Listener:
        return cast(Listener, self.server)

    @property
    def _state(self) -> ServerState:
        return cast(ServerState, self._listener.state)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # --- replies --------------------------------------------------------------

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Write the whole reply with one ``sendall`` (status line, headers, body)."""
        self._status = status
        self._record()
        self.log_request(status, len(body))
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [
            f"{self.protocol_version} {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error_json(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        error_type = ERROR_TYPES.get(status, "api_error")
        self._send_json(status, {"error": {"message": message, "type": error_type}}, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Framing errors found by http.server itself (bad request line, ...): JSON too."""
        self.close_connection = True
        self._send_error_json(code, message or explain or "bad request")

    def handle_expect_100(self) -> bool:
        """Refuse an oversize body before the client sends it (``Expect: 100-continue``)."""
        length = self.headers.get("Content-Length", "").strip()
        if length.isascii() and length.isdigit() and int(length) > self._state.max_body_bytes:
            self.close_connection = True
            self._send_error_json(413, f"request body exceeds {self._state.max_body_bytes} bytes")
            return False
        return super().handle_expect_100()

    def _drop(self) -> None:
        """Close the TCP connection without sending a single byte."""
        self.close_connection = True
        self._status = None
        self._record()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- dispatch -------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        self._t = time.monotonic()
        self._status = None
        self._fault = None
        self._session_id = None
        self._entry_uuid = None
        state = self._state
        self._url = url = urlsplit(self.path)
        # Admin calls are not recorded; everything else is, exactly once,
        # just before its reply goes out (so a client that has its answer
        # always finds the record).
        self._unrecorded = url.path != ADMIN_FAULTS
        try:
            try:
                body = read_body(self.headers, self.rfile, state.max_body_bytes)
            except BodyError as exc:
                if not exc.keep_alive:
                    self.close_connection = True
                if exc.status == 0:
                    return
                raise Reply(exc.status, exc.message) from None
            if url.path == ADMIN_FAULTS:
                self._admin(body)
                return
            if state.faults.latency:
                state.stopping.wait(state.faults.latency)
            self._route(url.path, body)
        except Reply as reply:
            with contextlib.suppress(OSError):  # the client may be gone already
                self._send_error_json(reply.status, reply.message, reply.headers)
        except OSError:  # the connection broke mid-request: nobody to answer
            self.close_connection = True
            self._status = None
        except Exception:
            logger.exception("local ingress server: unexpected error")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_error_json(500, "internal server error")
        finally:
            self._record()

    def _record(self) -> None:
        """Record this request once (no-op for admin calls and framing errors)."""
        if not self._unrecorded:
            return
        self._unrecorded = False
        self._state.record(
            RequestRecord(
                self.command,
                self._url.path,
                self._session_id,
                self.headers.get("Last-Uuid") or None,
                self._status,
                self._t,
                self._fault,
                self._entry_uuid,
                self._url.query,
            )
        )

    def _route(self, path: str, body: bytes) -> None:
        if path.startswith(SESSION_PREFIX):
            sid = self._session_from(path[len(SESSION_PREFIX) :], ("GET", "PUT"))
            if self.command == "PUT":
                self._put(sid, body)
            else:
                self._read(sid)
            return
        if path.startswith(CODE_PREFIX) and path.endswith(TELEPORT_SUFFIX):
            raw = path[len(CODE_PREFIX) : -len(TELEPORT_SUFFIX)]
            self._teleport(self._session_from(raw, ("GET",)))
            return
        raise Reply(404, f"no route for {path[:200]!r}")

    def _session_from(self, raw: str, methods: tuple[str, ...]) -> str:
        if "/" in raw:
            raise Reply(404, "no such route")
        if self.command not in methods:
            raise Reply(405, f"{self.command} not allowed", {"Allow": ", ".join(methods)})
        try:
            sid = validate_session_id(unquote(raw, errors="strict"))
        except (InvalidSessionIdError, UnicodeDecodeError) as exc:
            raise Reply(400, f"invalid session id: {exc}") from None
        self._session_id = sid
        return sid

    # --- auth -----------------------------------------------------------------

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        scheme, _, credential = value.partition(" ")
        return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None

    def _require_ingress_token(self) -> None:
        bearer = self._bearer()
        if bearer is None or not _same(bearer, self._state.token):
            raise Reply(401, "missing or invalid bearer token", dict(_CHALLENGE))

    def _require_oauth(self, *, allow_ingress: bool) -> None:
        state = self._state
        bearer = self._bearer()
        if bearer is None:
            raise Reply(401, "missing bearer token", dict(_CHALLENGE))
        if allow_ingress and _same(bearer, state.token):
            return
        if not _same(bearer, state.oauth_token):
            raise Reply(401, "invalid bearer token", dict(_CHALLENGE))
        org = self.headers.get("x-organization-uuid")
        if org is None or (state.org_uuid is not None and not _same(org, state.org_uuid)):
            raise Reply(403, "x-organization-uuid is missing or not this token's organization")

    # --- faults ---------------------------------------------------------------

    def _pre_faults(self, method: str, sid: str) -> FaultDecision:
        """Consume this request's fault; answer here if it replaces the handling."""
        decision = self._state.faults.decide(method, sid)
        self._fault = decision.name
        if decision.foreign_write:
            self._state.store.append_foreign(sid)
        if decision.reply_status is not None:
            headers = {}
            if decision.retry_after is not None:
                headers["Retry-After"] = _retry_after(decision.retry_after)
            raise Reply(decision.reply_status, "injected fault", headers)
        return decision

    def _post_faults(self, decision: FaultDecision) -> bool:
        """Apply an after-commit fault; True when it replaced the reply."""
        if decision.after_commit == "drop":
            self._drop()
            return True
        if decision.after_commit == "error":
            self._send_error_json(decision.after_commit_status, "injected fault after commit")
            return True
        return False

    # --- routes ---------------------------------------------------------------

    def _put(self, sid: str, body: bytes) -> None:
        self._require_ingress_token()
        content_type = self.headers.get("Content-Type", "")
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
        self._entry_uuid = entry_uuid
        last_uuid = self.headers.get("Last-Uuid") or None
        decision = self._pre_faults("PUT", sid)
        result = self._state.store.append(sid, entry, text, last_uuid)
        if self._post_faults(decision):
            return
        if result.stored:
            self._send_json(result.status, {"stored": True, "head": result.head})
            return
        headers = {}
        if result.head is not None and not self._state.faults.omit_conflict_head:
            headers["x-last-uuid"] = result.head
        message = "Last-Uuid does not match the session head, or the uuid is already stored"
        raise Reply(409, message, headers)

    def _read(self, sid: str) -> None:
        self._require_oauth(allow_ingress=True)
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        flag = query.get("after_last_compact", ["false"])[-1].lower()
        if flag not in ("true", "1", "false", "0"):
            raise Reply(400, "after_last_compact must be true or false")
        decision = self._pre_faults("GET", sid)
        lines = self._state.store.loglines(sid, after_last_compact=flag in ("true", "1"))
        if self._post_faults(decision):
            return
        if lines is None:
            raise Reply(404, "session not found")
        self._send(200, b'{"loglines":[' + ",".join(lines).encode() + b"]}")

    def _teleport(self, sid: str) -> None:
        self._require_oauth(allow_ingress=False)
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        raw_limit = query.get("limit", [str(MAX_PAGE)])[-1]
        if not (raw_limit.isascii() and raw_limit.isdigit()) or int(raw_limit) < 1:
            raise Reply(400, "limit must be a positive integer")
        limit = min(int(raw_limit), MAX_PAGE)
        cursor = query.get("cursor", [None])[-1]
        after = 0 if cursor is None else _decode_cursor(cursor)
        decision = self._pre_faults("GET", sid)
        rows = self._state.store.events_page(sid, after, limit + 1)
        if self._post_faults(decision):
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
        if more or self._state.faults.endless_teleport_cursor:
            page["next_cursor"] = _encode_cursor(rows[-1].id if rows else after)
        self._send_json(200, page)

    def _admin(self, body: bytes) -> None:
        if self.command not in ("GET", "POST", "DELETE"):
            raise Reply(405, f"{self.command} not allowed", {"Allow": "GET, POST, DELETE"})
        self._require_ingress_token()
        faults = self._state.faults
        if self.command == "POST":
            content_type = self.headers.get("Content-Type", "")
            if content_type.split(";", 1)[0].strip().lower() != "application/json":
                raise Reply(400, "Content-Type must be application/json")
            try:
                spec = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
                faults.configure(spec)
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise Reply(400, f"bad fault spec: {str(exc)[:300]}") from None
        elif self.command == "DELETE":
            faults.reset()
        self._send_json(200, faults.snapshot())
