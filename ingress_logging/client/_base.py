"""The half of a client that does no I/O, shared by the blocking and asyncio drivers.

A driver asks this base for the next request to make (``put_request``,
``refetch_request``, ``read_request``, ...), performs it with its own httpx
client, and hands the reply back (``on_put_reply``, ``finish_read``, ...).
The base turns requests and replies into calls on the protocol core and
keeps the per-session heads; the driver only moves bytes and waits. So the
two drivers cannot drift apart: neither of them interprets anything.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, Never, TypeVar

import httpx
import pluggy

from .._frontdoor import unknown_keywords
from .._host import Host
from .._notices import NOTICES
from .._session_id import validate_session_id
from ..diagnostics import DiagnosticData, DiagnosticSink, Level
from ..errors import SessionExpiredError
from ..protocol import (
    Action,
    AppendExchange,
    Done,
    Put,
    Refetch,
    RetryPolicy,
    TeleportPager,
    Wait,
    head_from_read,
    interpret_read,
    interpret_read_error,
    read_without_token,
    reorder_shown,
)
from ._common import (
    APPEND_BODY_CAP,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    HeadMap,
    PendingAppend,
    ResponseTooLargeError,
    TokenSource,
    append_headers,
    check_url,
    clean_token,
    describe_transport_error,
    entry_uuid,
    oauth_headers,
    read_headers,
    resolve_settings,
    serialise_entry,
    session_read_url,
    teleport_events_url,
)

__all__ = ["TRANSPORT_ERRORS", "ClientBase", "Request"]

H = TypeVar("H", httpx.Client, httpx.AsyncClient)

#: Names these clients no longer take, and the one they do.
_RENAMED: Final = {"retry": "retry_policy", "client": "http_client"}

logger = logging.getLogger("ingress_logging.client")

#: What a driver maps to "no reply" at the boundary (timeouts, refused or
#: dropped connections, protocol violations, undecodable bodies, and a
#: redirect whose ``Location`` httpx cannot parse: it raises ``InvalidURL``
#: while noting the redirect, even with ``follow_redirects=False``).
TRANSPORT_ERRORS = (httpx.RequestError, httpx.InvalidURL)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request a driver must perform. ``repr`` hides the headers (the token)."""

    method: str
    url: str
    headers: Mapping[str, str]
    timeout: httpx.Timeout
    cap: int
    content: bytes | None = None
    params: Mapping[str, str | int] | None = None

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url}, headers=<{len(self.headers)} hidden>)"


class ClientBase(Generic[H]):
    """Settings, host, heads, and the translation between requests and the protocol core.

    The constructor is both drivers' (``H`` is their httpx client type):

    Args:
        token: bearer token, or a callable returning one (or None) - asked
            before every request, so rotated tokens are picked up. Plugins
            and ``INGRESS_LOGGING_TOKEN`` are consulted as ``PluginHost`` says.
        base_api_url: where sessions live (default: ``INGRESS_LOGGING_BASE_URL``;
            with neither, a call without ``url`` raises ``ConfigError``).
        retry_policy: attempts and backoff. ``token``, ``base_api_url`` and
            ``retry_policy`` may be given positionally; the rest are keyword-only.
        timeout: per append request; ``read_timeout`` for reads (seed: 20 s).
        http_client: an httpx client to reuse (``httpx.Client`` for the
            blocking client, ``httpx.AsyncClient`` for the asyncio one); it is
            not closed by ``close()``.
        diagnostics: sink ``(level, event, data)`` for the seed's events.
        plugins: a pluggy PluginManager (default: the process-wide one).
        allow_insecure_http: permit a token over plain http to a non-loopback host.
        max_response_bytes: largest read/page body accepted (default 64 MiB).
        host: a ready-made ``Host`` (e.g. the delivery engine's) to use instead of
            the ``PluginHost`` built from token/plugins/diagnostics.

    Raises:
        TypeError: an unknown keyword (naming the right one), or an argument
            of the wrong type.
    """

    #: The httpx client class this driver runs on.
    _http_type: type[H]

    def __init__(
        self,
        token: TokenSource | None = None,
        base_api_url: str | None = None,
        retry_policy: RetryPolicy | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        read_timeout: float | httpx.Timeout = DEFAULT_READ_TIMEOUT,
        http_client: H | None = None,
        diagnostics: DiagnosticSink | None = None,
        plugins: pluggy.PluginManager | None = None,
        allow_insecure_http: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        host: Host | None = None,
        **unknown: Never,
    ) -> None:
        if unknown:
            known = [n for n in inspect.signature(ClientBase).parameters if n != "unknown"]
            raise unknown_keywords(type(self).__name__, unknown, known, _RENAMED)
        if http_client is not None and not isinstance(http_client, self._http_type):
            raise TypeError(
                f"http_client must be an httpx.{self._http_type.__name__}, "
                f"not {type(http_client).__name__}"
            )
        settings = resolve_settings(
            token=token,
            base_api_url=base_api_url,
            retry_policy=retry_policy,
            timeout=timeout,
            read_timeout=read_timeout,
            allow_insecure_http=allow_insecure_http,
            max_response_bytes=max_response_bytes,
        )
        if host is None:
            # The default host is built here, at the client's edge; the rest
            # of the client knows only the Host protocol.
            from ..plugins import PluginHost

            host = PluginHost(
                plugins, token=token, base_api_url=base_api_url, diagnostics=diagnostics
            )
        self._settings = settings
        self._policy = settings.policy
        self._host: Host = host
        self._heads = HeadMap()
        self._closed = False
        self._owns_http = http_client is None
        self._http: H = http_client if http_client is not None else self._new_http()
        self._init_driver()

    def _init_driver(self) -> None:
        """The driver's own state (its session turns), set up last by the constructor."""

    def _new_http(self) -> H:
        """A connection pool of this driver's own (closed by ``close()``)."""
        return self._http_type(follow_redirects=False)

    # -- small helpers ----------------------------------------------------

    @property
    def retry_policy(self) -> RetryPolicy:
        """The attempts-and-backoff policy every append of this client follows."""
        return self._policy

    def _emit(self, level: Level, event: str, data: DiagnosticData) -> None:
        self._host.diagnostic(level, event, data)

    def _token(self, session_id: str) -> str | None:
        """The token for one request, resolved now (tokens rotate). Never raises."""
        try:
            token = self._host.auth_token(session_id)
        except Exception as exc:
            # The text of a token source's exception could quote the token.
            logger.debug("token source raised %s; treating as no token", type(exc).__name__)
            return None
        return clean_token(token)

    def _url(self, session_id: str, url: object) -> str:
        if url is None:
            url = self._host.session_url(session_id)
        return check_url(url, allow_insecure_http=self._settings.allow_insecure_http)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    def __repr__(self) -> str:
        token = "<set>" if self._settings.token_set else "unset"
        return (
            f"{type(self).__name__}(base_api_url={self._settings.base_api_url!r}, "
            f"token={token}, retry_policy={self._policy!r}, "
            f"allow_insecure_http={self._settings.allow_insecure_http}, "
            f"sessions={len(self._heads)}, closed={self._closed})"
        )

    # -- the step API (appends) -----------------------------------------

    def begin_append(
        self,
        session_id: str,
        entry: Mapping[str, Any],
        url: str | None = None,
        *,
        chain_parent: bool = False,
    ) -> PendingAppend:
        """Start one append: validate, serialise once, and get the first action.

        Raises (before any request): InvalidSessionIdError, InvalidURLError,
        InsecureTransportError, TypeError (entry not a JSON-able dict).
        ``url`` defaults to the host's URL for the session. ``chain_parent``:
        ``entry["parentUuid"]`` is the caller's filling, kept equal to each
        attempt's ``Last-Uuid`` (the entry, a dict, is updated in place).
        """
        self._check_open()
        session_id = validate_session_id(session_id)
        target = self._url(session_id, url)
        body = serialise_entry(entry)
        token = self._token(session_id)
        exchange = AppendExchange(
            entry_uuid(entry), self._heads.get(session_id), self._policy, self._emit
        )
        exchange.start(has_token=token is not None)
        chained = entry if chain_parent and isinstance(entry, dict) else None
        return PendingAppend(session_id, target, body, exchange, first_token=token, chained=chained)

    def resume(self, pending: PendingAppend) -> Action:
        """After waiting out a ``Wait``: the next action (the next attempt's ``Put``)."""
        if not isinstance(pending.action, Wait):
            raise RuntimeError(f"resume() needs a pending Wait, not {pending.action!r}")
        return self._store(pending, pending.exchange.on_waited())

    def _store(self, pending: PendingAppend, action: Action) -> Action:
        self._heads.set(pending.session_id, pending.exchange.head)
        if reorder_shown(pending.exchange, behind=pending.behind):
            self._path_reordered(pending.url)
        return action

    def _path_reordered(self, url: str) -> None:
        """``url``'s path handed the server pipelined appends out of order (only a
        pipelining driver has ``behind`` recoveries, and acts on this)."""

    def put_request(self, pending: PendingAppend, action: Put) -> Request | Action:
        """The PUT for this attempt, or the next action if no token is left."""
        token, pending.first_token = pending.first_token, None
        if token is None:
            token = self._token(pending.session_id)
        if token is None:
            return self._store(pending, pending.exchange.on_token_lost())
        headers = append_headers(
            self._host.request_headers(pending.session_id), token, action.last_uuid
        )
        return Request(
            "PUT",
            pending.url,
            headers,
            self._settings.timeout,
            APPEND_BODY_CAP,
            content=pending.body_for(action.last_uuid),
        )

    def on_put_reply(self, pending: PendingAppend, status: int, headers: httpx.Headers) -> Action:
        logger.debug("append attempt %d: HTTP %d", pending.exchange.attempt, status)
        action = pending.exchange.on_response(
            status, headers.get("x-last-uuid"), headers.get("retry-after")
        )
        return self._store(pending, action)

    def on_put_error(self, pending: PendingAppend, error: BaseException) -> Action:
        NOTICES.note_transport_error(describe_transport_error(error))
        return self._store(pending, pending.exchange.on_transport_error(error))

    def refetch_request(self, pending: PendingAppend) -> Request | Action:
        """The GET that finds the head after a 409 without ``x-last-uuid``."""
        token = self._token(pending.session_id)
        if token is None:
            return self._store(pending, pending.exchange.on_token_lost())
        headers = read_headers(self._host.request_headers(pending.session_id), token)
        return Request("GET", pending.url, headers, self._settings.read_timeout, self._response_cap)

    def on_refetch_reply(self, pending: PendingAppend, status: int, body: bytes | None) -> Action:
        if body is None:
            return self.on_refetch_error(pending, ResponseTooLargeError())
        try:
            logs = interpret_read(status, body, self._emit)
        except SessionExpiredError:
            return self._store(pending, pending.exchange.on_refetch_unauthorized())
        return self._store(pending, pending.exchange.on_refetched(logs))

    def on_refetch_error(self, pending: PendingAppend, error: BaseException) -> Action:
        NOTICES.note_transport_error(describe_transport_error(error))
        interpret_read_error(error, self._emit)
        return self._store(pending, pending.exchange.on_refetched(None))

    def request_for(self, pending: PendingAppend) -> Request | Action:
        """The request the pending action needs, or the next action without one."""
        action = pending.action
        if isinstance(action, Put):
            return self.put_request(pending, action)
        if isinstance(action, Refetch):
            return self.refetch_request(pending)
        if isinstance(action, Wait):
            # The caller waited (advance() after a Wait means "the wait is over").
            return self._store(pending, pending.exchange.on_waited())
        assert isinstance(action, Done)
        return action

    def on_reply(
        self,
        pending: PendingAppend,
        request: Request,
        reply: tuple[int, httpx.Headers, bytes | None] | BaseException,
    ) -> Action:
        """Feed what came back for ``request`` (a reply or a transport error)."""
        if request.method == "PUT":
            if isinstance(reply, BaseException):
                return self.on_put_error(pending, reply)
            return self.on_put_reply(pending, reply[0], reply[1])
        if isinstance(reply, BaseException):
            return self.on_refetch_error(pending, reply)
        return self.on_refetch_reply(pending, reply[0], reply[2])

    # -- reads -------------------------------------------------------------

    @property
    def _response_cap(self) -> int:
        return self._settings.max_response_bytes

    def read_request(
        self, session_id: str, url: object, after_last_compact: bool
    ) -> Request | None:
        """The session read's GET; None (reported) when there is no token."""
        self._check_open()
        session_id = validate_session_id(session_id)
        target = self._url(session_id, url)
        token = self._token(session_id)
        if token is None:
            read_without_token(self._emit)
            return None
        return Request(
            "GET",
            target,
            read_headers(self._host.request_headers(session_id), token),
            self._settings.read_timeout,
            self._response_cap,
            params={"after_last_compact": "true"} if after_last_compact else None,
        )

    def finish_read(
        self,
        session_id: str | None,
        reply: tuple[int, httpx.Headers, bytes | None] | BaseException,
    ) -> list[dict[str, Any]] | None:
        """Interpret a read's reply; adopt its head when ``session_id`` is given.

        Raises SessionExpiredError on 401, as the seed throws.
        """
        if isinstance(reply, BaseException):
            NOTICES.note_transport_error(describe_transport_error(reply))
            interpret_read_error(reply, self._emit)
            return None
        status, _, body = reply
        if body is None:
            interpret_read_error(ResponseTooLargeError(), self._emit)
            return None
        logs = interpret_read(status, body, self._emit)
        if session_id is not None:
            head = head_from_read(logs)
            if head is not None:
                self._heads.set(session_id, head)
        return logs

    def oauth_read_request(self, session_id: str, access_token: str, org_uuid: str) -> Request:
        self._check_open()
        url = session_read_url(self._settings.api_base(), validate_session_id(session_id))
        check_url(url, allow_insecure_http=self._settings.allow_insecure_http)
        return Request(
            "GET",
            url,
            oauth_headers(access_token, org_uuid),
            self._settings.read_timeout,
            self._response_cap,
        )

    def teleport_start(
        self, session_id: str, access_token: str, org_uuid: str
    ) -> tuple[str, dict[str, str], TeleportPager]:
        self._check_open()
        url = teleport_events_url(self._settings.api_base(), validate_session_id(session_id))
        check_url(url, allow_insecure_http=self._settings.allow_insecure_http)
        return url, oauth_headers(access_token, org_uuid), TeleportPager(self._emit)

    def teleport_request(
        self, url: str, headers: Mapping[str, str], params: Mapping[str, str | int]
    ) -> Request:
        return Request(
            "GET", url, headers, self._settings.read_timeout, self._response_cap, params=params
        )

    @staticmethod
    def teleport_feed(
        pager: TeleportPager, reply: tuple[int, httpx.Headers, bytes | None] | BaseException
    ) -> None:
        """Feed one page's reply; raises SessionExpiredError on 401."""
        if isinstance(reply, BaseException):
            pager.on_transport_error(reply)
        elif reply[2] is None:
            pager.on_transport_error(ResponseTooLargeError())
        else:
            pager.on_response(reply[0], reply[2])

    # -- state ---------------------------------------------------------------

    def clear_session(self, session_id: str) -> None:
        """Forget this session's head (the next append omits ``Last-Uuid``)."""
        self._heads.clear(validate_session_id(session_id))

    def clear_all_sessions(self) -> None:
        """Forget every session's head."""
        self._heads.clear()
