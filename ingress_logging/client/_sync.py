"""The blocking driver: ``SessionIngressClient`` on ``httpx.Client``.

It moves bytes and sleeps; every decision is the protocol core's (through
``ClientBase``). Appends for one session take turns in call order (a ticket
per call); different sessions never wait for each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Never, Self

import httpx
import pluggy

from .._host import Host
from .._session_id import validate_session_id
from ..diagnostics import DiagnosticSink
from ..protocol import DEFAULT_WINDOW, Action, Done, RetryPolicy, Wait
from ._base import TRANSPORT_ERRORS, Request
from ._body import CappedBody
from ._common import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    PendingAppend,
    TokenSource,
    serialise_entry,
)
from ._pipeline import Pipelines
from ._windowed import OriginOrder, WindowedClient, WindowResult, proxy_configured

__all__ = ["SessionIngressClient"]

Reply = tuple[int, httpx.Headers, bytes | None]


class _Turn:
    __slots__ = ("abandoned", "cond", "next_ticket", "serving", "users")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.next_ticket = 0
        self.serving = 0
        self.users = 0
        self.abandoned: set[int] = set()  # tickets whose holders left before their turn


class SessionTurns:
    """Per-session FIFO mutual exclusion: callers enter in the order they arrived.

    A plain ``threading.Lock`` is not fair (any waiter may win), which would
    reorder a session's entries. Here each caller takes a ticket under one
    lock and waits for its number; idle sessions are forgotten. A caller
    interrupted while waiting (KeyboardInterrupt) gives its ticket up, so the
    line never stalls behind it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, _Turn] = {}

    @contextmanager
    def turn(self, session_id: str) -> Iterator[None]:
        with self._lock:
            turn = self._turns.get(session_id)
            if turn is None:
                turn = self._turns[session_id] = _Turn(self._lock)
            ticket = turn.next_ticket
            turn.next_ticket += 1
            turn.users += 1
            try:
                while turn.serving != ticket:
                    turn.cond.wait()
            except BaseException:
                self._leave(session_id, turn, ticket)
                raise
        try:
            yield
        finally:
            with self._lock:
                self._leave(session_id, turn, ticket)

    def _leave(self, session_id: str, turn: _Turn, ticket: int) -> None:
        """Give up ``ticket`` (served or not) and let the next live ticket in; lock held."""
        if turn.serving == ticket:
            turn.serving += 1
        else:
            turn.abandoned.add(ticket)
        while turn.serving in turn.abandoned:
            turn.abandoned.discard(turn.serving)
            turn.serving += 1
        turn.users -= 1
        if turn.users == 0:
            del self._turns[session_id]
        else:
            turn.cond.notify_all()

    def __len__(self) -> int:
        return len(self._turns)


def _total_seconds(timeout: httpx.Timeout) -> float | None:
    """The request's total deadline: the largest of its timeouts."""
    parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
    return max(parts) if parts else None


class SessionIngressClient(WindowedClient):
    """Blocking session-ingress client: the seed's operations, on ``httpx.Client``.

    The arguments are ``ClientBase``'s:

    Args:
        token: bearer token, or a callable returning one (or None) - asked
            before every request, so rotated tokens are picked up. Plugins
            and ``INGRESS_LOGGING_TOKEN`` are consulted as ``PluginHost`` says.
        base_api_url: where sessions live (default: ``INGRESS_LOGGING_BASE_URL``;
            with neither, a call without ``url`` raises ``ConfigError``).
        retry_policy: attempts and backoff. ``token``, ``base_api_url`` and
            ``retry_policy`` may be given positionally; the rest are keyword-only.
        timeout: per append request; ``read_timeout`` for reads (seed: 20 s).
        http_client: an ``httpx.Client`` to reuse; it is
            not closed by ``close()``.
        diagnostics: sink ``(level, event, data)`` for the seed's events.
        plugins: a pluggy PluginManager (default: the process-wide one).
        allow_insecure_http: permit a token over plain http to a non-loopback host.
        max_response_bytes: largest read/page body accepted (default 64 MiB).
        host: a ready-made ``Host`` (e.g. the delivery engine's) to use instead of
            building a ``PluginHost`` from token/plugins/diagnostics.
        pipeline: whether ``append_many`` may keep several appends in flight on
            its own keep-alive connections. None (default): when the client
            made its own ``httpx.Client`` and no proxy variable is set, since
            a given ``http_client`` may carry a transport, proxy or hooks the
            pipelined connection would bypass.
    """

    _http_type = httpx.Client

    def __init__(
        self,
        token: TokenSource | None = None,
        base_api_url: str | None = None,
        retry_policy: RetryPolicy | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        read_timeout: float | httpx.Timeout = DEFAULT_READ_TIMEOUT,
        http_client: httpx.Client | None = None,
        diagnostics: DiagnosticSink | None = None,
        plugins: pluggy.PluginManager | None = None,
        allow_insecure_http: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        host: Host | None = None,
        pipeline: bool | None = None,
        **unknown: Never,
    ) -> None:
        # ``pipeline`` is this driver's own; ClientBase's constructor does the rest
        # (and names the right keyword for a misspelt one).
        self._pipeline_requested = pipeline
        super().__init__(
            token,
            base_api_url,
            retry_policy,
            timeout=timeout,
            read_timeout=read_timeout,
            http_client=http_client,
            diagnostics=diagnostics,
            plugins=plugins,
            allow_insecure_http=allow_insecure_http,
            max_response_bytes=max_response_bytes,
            host=host,
            **unknown,
        )

    def _init_driver(self) -> None:
        self._turns = SessionTurns()
        pipeline = self._pipeline_requested
        if pipeline is None:
            pipeline = self._owns_http and not proxy_configured()
        timeout = self._settings.timeout
        self._pipelines = Pipelines(connect_timeout=timeout.connect) if pipeline else None
        self._windows = {}  # per origin: the window the last one ended with
        self._order = OriginOrder()

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the connections, if this client opened them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pipelines is not None:
            self._pipelines.close()
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport -----------------------------------------------------------

    def _send(self, request: Request) -> Reply | BaseException:
        """Perform one request; a transport failure is returned, not raised."""
        try:
            # One deadline for the whole exchange (connect, send, the reply and
            # its body): the engine's transport enforces it on every socket
            # operation; any transport at least between body chunks.
            total = _total_seconds(request.timeout)
            deadline = None if total is None else time.monotonic() + total
            built = self._http.build_request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                params=request.params,
                timeout=request.timeout,
                extensions={"deadline": deadline},
            )
            response = self._http.send(built, stream=True)
            try:
                reader = CappedBody(response, request.cap, deadline)
                if reader.wants_more:
                    for chunk in response.iter_bytes():
                        if not reader.feed(chunk):
                            break
                body = reader.body
            finally:
                response.close()
        except TRANSPORT_ERRORS as exc:
            return exc
        return response.status_code, response.headers, body

    # -- appends -------------------------------------------------------------

    def advance(self, pending: PendingAppend) -> Action:
        """Perform the pending Put or Refetch and return the next action.

        On a ``Wait`` the caller waits ``action.delay`` seconds first, then
        calls ``advance`` (or ``resume``) again. On ``Done`` nothing happens.
        """
        request = self.request_for(pending)
        if not isinstance(request, Request):
            return request
        return self.on_reply(pending, request, self._send(request))

    def append_session_log(
        self, session_id: str, entry: Mapping[str, Any], url: str | None = None
    ) -> bool:
        """Append ``entry`` to the session; True once it is in the chain.

        Calls for one session run one at a time, in call order; calls for
        different sessions run concurrently. Bad input raises before any request.
        """
        session_id = validate_session_id(session_id)
        with self._turns.turn(session_id):
            # Begun inside the turn: the exchange starts from the head the
            # previous append of this session left behind.
            pending = self.begin_append(session_id, entry, url)
            action = pending.action
            while not isinstance(action, Done):
                if isinstance(action, Wait):
                    time.sleep(action.delay)
                    action = self.resume(pending)
                else:
                    action = self.advance(pending)
        return self._outcome(pending)

    def append_many(
        self,
        session_id: str,
        entries: Sequence[Mapping[str, Any]],
        url: str | None = None,
        *,
        window: int = DEFAULT_WINDOW,
    ) -> list[Done]:
        """Append ``entries`` to the session in order; one ``Done`` per entry, in order.

        Up to ``window`` appends are in flight at once on one keep-alive
        connection (``protocol.AppendWindow``): entry k+1 is sent with
        ``Last-Uuid: uuid(k)`` before k is acknowledged. Order and exactly
        once hold with any failure at any position; ``window=1``, a client
        built with ``pipeline=False``, or an origin seen to reorder appends
        sends one at a time. Shares the session's turn with ``append_session_log``.
        Bad input raises before any request.
        """
        self._check_open()
        session_id = validate_session_id(session_id)
        target = self._url(session_id, url)
        for entry in entries:
            serialise_entry(entry)  # bad input raises here, before any request
        if self._pipelines is None or window == 1 or not self._keeps_order(target):
            with self._turns.turn(session_id):
                return [self._drive(self.begin_append(session_id, e, target)) for e in entries]
        results: list[Done] = []
        while len(results) < len(entries):
            batch = self.append_window(session_id, entries[len(results) :], target, window=window)
            results += batch.done
            if batch.pending is not None:
                with self._turns.turn(session_id):
                    results.append(self._drive(batch.pending))
        return results

    def append_window(
        self,
        session_id: str,
        entries: Sequence[Mapping[str, Any]],
        url: str | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        chain_parent: bool | Sequence[bool] = False,
    ) -> WindowResult:
        """Pipeline ``entries`` until done or until one needs recovering (step API).

        Returns the outcomes of the first ``len(done)`` entries and, when an
        entry was not proven stored, its exchange as a ``PendingAppend`` to
        drive with ``advance``/``resume`` (a driver with its own timers, like
        the delivery engine, waits there instead of in a sleep). The entries
        after it were not proven stored: append them again afterwards (a
        resend of one that was stored is recognised as already stored).
        ``chain_parent`` (one flag, or one per entry): the entry's ``parentUuid``
        is the caller's filling, rewritten to the ``Last-Uuid`` it is sent with.
        """
        self._check_open()
        session_id = validate_session_id(session_id)
        target = self._url(session_id, url)
        flags = [chain_parent] * len(entries) if isinstance(chain_parent, bool) else chain_parent
        if len(flags) != len(entries):
            raise ValueError("chain_parent needs one flag per entry")
        bodies = [serialise_entry(entry) for entry in entries]
        chained = [dict(e) if flag else None for e, flag in zip(entries, flags, strict=True)]
        with self._turns.turn(session_id):
            if self._pipelines is None or window == 1 or not self._keeps_order(target):
                # One at a time, through httpx: the first entry as an ordinary append.
                if not entries:
                    return WindowResult([], None)
                first = self.begin_append(session_id, entries[0], target, chain_parent=flags[0])
                return WindowResult([], first)
            return self._pipelined(session_id, target, bodies, chained, entries, window)

    def _drive(self, pending: PendingAppend) -> Done:
        action = pending.action
        while not isinstance(action, Done):
            if isinstance(action, Wait):
                time.sleep(action.delay)
                action = self.resume(pending)
            else:
                action = self.advance(pending)
        return action

    @staticmethod
    def _outcome(pending: PendingAppend) -> bool:
        assert isinstance(pending.action, Done)
        return pending.action.ok

    # -- reads ---------------------------------------------------------------

    def get_session_logs(
        self, session_id: str, url: str | None = None, *, after_last_compact: bool = False
    ) -> list[dict[str, Any]] | None:
        """The session's entries; ``[]`` on 404; None on other failures.

        Raises SessionExpiredError on 401. Adopts the last entry's uuid as head.
        """
        request = self.read_request(session_id, url, after_last_compact)
        if request is None:
            return None
        return self.finish_read(session_id, self._send(request))

    def get_session_logs_via_oauth(
        self, session_id: str, access_token: str, org_uuid: str
    ) -> list[dict[str, Any]] | None:
        """The session read with OAuth headers (to pull a session to another machine)."""
        request = self.oauth_read_request(session_id, access_token, org_uuid)
        return self.finish_read(None, self._send(request))

    def get_teleport_events(
        self, session_id: str, access_token: str, org_uuid: str
    ) -> list[dict[str, Any]] | None:
        """Every event payload, page by page; None if the first page is 404 or on error."""
        url, headers, pager = self.teleport_start(session_id, access_token, org_uuid)
        while (params := pager.next_params()) is not None:
            self.teleport_feed(pager, self._send(self.teleport_request(url, headers, params)))
        return pager.result
