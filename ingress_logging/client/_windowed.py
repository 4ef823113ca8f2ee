"""The pipelined half of the blocking client: a session's appends in a window.

``WindowedClient`` drives ``protocol.AppendWindow`` over ``_pipeline``'s
keep-alive connections; ``SessionIngressClient`` builds on it and adds the
session turn (``append_window``, ``append_many``). The window decides; this
module writes requests, reads replies in order, and hands a recovery back as
a ``PendingAppend`` for the step API.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from .. import diagnostics as ev
from .._notices import NOTICES
from ..protocol import AppendWindow, Done
from ._base import ClientBase
from ._common import (
    APPEND_BODY_CAP,
    PendingAppend,
    append_headers,
    describe_transport_error,
    entry_uuid,
    serialise_entry,
)
from ._pipeline import ConnectionLost, PipelinedConnection, Pipelines, encode_request

__all__ = ["INITIAL_WINDOW", "OriginOrder", "WindowResult", "WindowedClient", "proxy_configured"]

#: The window of the first appends to an origin (slow start, as TCP's initial
#: window): acknowledgements widen it by one each; an origin that is down
#: never sees more than this many appends of a session at once.
INITIAL_WINDOW: Final = 4

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def proxy_configured() -> bool:
    """A proxy environment variable is set (the pipelined connection cannot use it)."""
    return any(os.environ.get(name) for name in _PROXY_VARS)


@dataclass(slots=True)
class WindowResult:
    """What ``append_window`` did: ``done`` for the first entries, in order, and the
    next entry's exchange when it needs recovering.

    ``pending`` None: every entry is done, or - fewer ``done`` than entries - the
    last one failed for good and the window stopped there: the rest were not
    stored; append them again, after whatever takes the failed one's place.
    """

    done: list[Done]
    pending: PendingAppend | None


class _Sender:
    """The append bodies of one window; a chained ``parentUuid`` follows ``Last-Uuid``."""

    __slots__ = ("bodies", "chained")

    def __init__(self, bodies: list[bytes], chained: list[dict[str, Any] | None]) -> None:
        self.bodies = bodies
        self.chained = chained

    def body(self, seq: int, last_uuid: str | None) -> bytes:
        entry = self.chained[seq]
        if entry is not None and entry.get("uuid") and entry.get("parentUuid") != last_uuid:
            entry["parentUuid"] = last_uuid
            self.bodies[seq] = serialise_entry(entry)
        return self.bodies[seq]


Origin = tuple[str, str, int]


class OriginOrder:
    """The origins seen to reorder appends (pipelining is off for them), counted.

    The engine's workers share one client, hence the lock: each origin is
    counted, and reported, once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unordered: set[Origin] = set()
        self.fallbacks = 0

    def __contains__(self, origin: object) -> bool:
        return origin in self._unordered

    def fall_back(self, origin: Origin) -> int | None:
        """Mark ``origin``; the new count of such origins, or None when it was
        marked already."""
        with self._lock:
            if origin in self._unordered:
                return None
            self._unordered.add(origin)
            self.fallbacks += 1
            return self.fallbacks


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


class WindowedClient(ClientBase[httpx.Client]):
    """``ClientBase`` plus pipelined appends (the subclass sets the attributes)."""

    _pipelines: Pipelines | None
    _windows: dict[Origin, int]
    _order: OriginOrder

    @property
    def pipeline_fallbacks(self) -> int:
        """Origins where pipelining was switched off because the path reordered appends."""
        return self._order.fallbacks

    def window_for(self, url: str, window: int) -> int:
        """The window the next ``append_window`` to ``url``'s origin would start with
        (at most ``window``; 1 without pipelining or after failures)."""
        origin = Pipelines.origin(url)
        if self._pipelines is None or origin in self._order:
            return 1
        return max(1, min(window, self._windows.get(origin, INITIAL_WINDOW)))

    def _keeps_order(self, url: str) -> bool:
        """False once ``url``'s origin was seen to reorder appends."""
        return Pipelines.origin(url) not in self._order

    def _path_reordered(self, url: str) -> None:
        """One at a time to ``url``'s origin from now on; reported and counted once."""
        count = self._order.fall_back(Pipelines.origin(url))
        if count is not None:
            self._emit("warn", ev.PIPELINE_REORDERED, {"origin_reorders": count})

    def _pipelined(
        self,
        session_id: str,
        target: str,
        bodies: list[bytes],
        chained: list[dict[str, Any] | None],
        entries: Sequence[Mapping[str, Any]],
        window: int,
    ) -> WindowResult:
        results: list[Done] = []
        origin = Pipelines.origin(target)
        win = AppendWindow(
            self._heads.get(session_id),
            window=window,
            policy=self._policy,
            emit=self._emit,
            start=self._windows.get(origin, INITIAL_WINDOW),
        )
        for entry in entries:
            win.add(entry_uuid(entry))
        sender = _Sender(bodies, chained)
        conn: PipelinedConnection | None = None
        pending: PendingAppend | None = None
        try:
            while not win.idle and not win.stopped:
                if win.recovery is not None:
                    seq = win.recovering_seq
                    assert seq is not None
                    sender.body(seq, win.recovery.head)  # the chained parent, as sent
                    # ``behind``: its exchange may yet show the path reordered it
                    # (``ClientBase._store`` looks after every step).
                    pending = PendingAppend(
                        session_id,
                        target,
                        sender.bodies[seq],
                        win.recovery,
                        chained=sender.chained[seq],
                        behind=win.recovery_behind,
                    )
                    break
                conn = self._exchange(conn, win, session_id, target, sender)
                self._heads.set(session_id, win.head)
                results += (done for _, done in win.take_outcomes())
        finally:
            if conn is not None and win.in_flight:
                self._pipes().discard(conn)  # replies still owed: the stream is out of step
        self._heads.set(session_id, win.head)
        results += (done for _, done in win.take_outcomes())
        self._windows[origin] = win.window  # where the next window to this origin starts
        if win.reordered:
            self._path_reordered(target)
        return WindowResult(results, pending)

    def _pipes(self) -> Pipelines:
        assert self._pipelines is not None
        return self._pipelines

    def _exchange(
        self,
        conn: PipelinedConnection | None,
        win: AppendWindow,
        session_id: str,
        target: str,
        sender: _Sender,
    ) -> PipelinedConnection | None:
        """Write what the window allows, then read one reply; the connection to keep."""
        pipes = self._pipes()
        read_timeout = self._settings.timeout.read
        token = self._token(session_id)
        if token is None and not win.in_flight:
            win.on_no_token()
            return conn
        if token is not None:
            if conn is None or conn.closed:
                try:
                    conn = pipes.get(target)
                except ConnectionLost as exc:
                    NOTICES.note_transport_error(describe_transport_error(exc))
                    win.to_send()
                    win.on_lost()
                    return None
            sends = win.to_send()
            if sends:
                extra = self._host.request_headers(session_id)
                data = b"".join(
                    encode_request(
                        "PUT",
                        target,
                        append_headers(extra, token, s.last_uuid),
                        sender.body(s.seq, s.last_uuid),
                    )
                    for s in sends
                )
                try:
                    conn.write(data, _deadline(read_timeout))
                except ConnectionLost as exc:
                    NOTICES.note_transport_error(describe_transport_error(exc))
                    pipes.discard(conn)
                    win.on_lost()
                    return None
        assert conn is not None
        try:
            status, headers, will_close = conn.read_reply(_deadline(read_timeout), APPEND_BODY_CAP)
        except ConnectionLost as exc:
            NOTICES.note_transport_error(describe_transport_error(exc))
            pipes.discard(conn)
            win.on_lost()
            return None
        win.on_reply(status, headers.get("x-last-uuid"), headers.get("retry-after"))
        if will_close:
            pipes.discard(conn)
            win.on_lost()
            return None
        return conn
