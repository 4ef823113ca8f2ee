"""The append decision, written once: given this reply, what happens next.

``AppendExchange`` is a sans-I/O state machine in the manner of h11: it never
touches a socket or a clock. A driver (the blocking client, the asyncio client,
or the delivery engine's scheduler) asks it for an action, performs that
action, and feeds the result back:

    action = exchange.start(has_token=...)
    Put(last_uuid)  -> send the PUT; then on_response(...) or on_transport_error()
    Refetch()       -> GET the session; then on_refetched(loglines or None)
    Wait(delay)     -> wait (sleep, asyncio.sleep or a timer heap); then on_waited()
    Done(outcome)   -> finished; ``outcome.ok`` is the seed's boolean result

Row by row this is PROTOCOL.md's append table and the seed's
``appendSessionLogImpl``; where the two differ, docs/protocol.md lists each
difference and why.
"""

from __future__ import annotations

import enum
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Final, ParamSpec

from .. import diagnostics as ev
from ..diagnostics import DiagnosticData, Level
from ._retry import RetryPolicy

__all__ = [
    "PERMANENT_STATUSES",
    "Action",
    "AppendExchange",
    "AppendOutcome",
    "Done",
    "Emit",
    "Put",
    "Refetch",
    "Wait",
    "find_last_uuid",
]

logger = logging.getLogger("ingress_logging.protocol")

Emit = Callable[[Level, str, DiagnosticData], None]

#: Statuses that retrying cannot fix: the append fails at once.
PERMANENT_STATUSES: Final = frozenset({400, 403, 404, 413, 422})
#: Statuses on which the server's ``Retry-After`` is honoured: it knows when it
#: can take more.
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
#: Losing the race for the head to a writer that made progress is not a failed
#: attempt. The first loss retries at once (the seed's rule); each further
#: loss in a row waits a random time in [0, min(CAP, BASE * 2**k)] so that
#: racing writers fall out of lockstep.
CONTENTION_BASE_DELAY: Final = 0.005
CONTENTION_MAX_DELAY: Final = 0.5
#: Races lost in a row before the entry gives up (outcome ``conflict``): a
#: bound against a server that names a new head forever, never reached by
#: honest writers that finish (every loss is another writer's stored entry).
CONTENTION_MAX_ROUNDS: Final = 1000


class AppendOutcome(enum.Enum):
    """How an append ended. ``ok`` is what ``append_session_log`` returns."""

    STORED = "stored"  # 200/201
    ALREADY_STORED = "already_stored"  # 409 naming this entry: an earlier reply was lost
    DUPLICATE = "duplicate"  # beyond: the entry is in the chain, not at its head
    NO_TOKEN = "no_token"
    UNAUTHORIZED = "unauthorized"  # 401
    PERMANENT = "permanent"  # beyond: 400/403/404/413/422
    CONFLICT = "conflict"  # 409, head could not be determined
    RETRIES_EXHAUSTED = "retries_exhausted"

    @property
    def ok(self) -> bool:
        return self in _OK_OUTCOMES


_OK_OUTCOMES: Final = frozenset(
    {AppendOutcome.STORED, AppendOutcome.ALREADY_STORED, AppendOutcome.DUPLICATE}
)


@dataclass(frozen=True, slots=True)
class Put:
    """Send the entry with this ``Last-Uuid`` (None: omit the header)."""

    last_uuid: str | None
    attempt: int


@dataclass(frozen=True, slots=True)
class Refetch:
    """GET the session to learn its head (the server's 409 did not say)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Back off for ``delay`` seconds, then call ``on_waited()``.

    ``contention``: the wait follows a lost race for the head (another writer
    stored an entry), not a failure: drivers that budget retries skip it.
    """

    delay: float
    attempt: int
    contention: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """Finished; ``status`` is the last HTTP status seen, if any."""

    outcome: AppendOutcome
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome.ok


Action = Put | Refetch | Wait | Done


def find_last_uuid(logs: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The uuid of the last entry that has one (summaries and tags have none)."""
    if not logs:
        return None
    for entry in reversed(logs):
        uuid = entry.get("uuid")
        if isinstance(uuid, str) and uuid:
            return uuid
    return None


_MAX_HEADER_UUID = 256


def _is_header_safe(value: str) -> bool:
    """True when ``value`` can be sent back verbatim as a ``Last-Uuid`` header."""
    return 0 < len(value) <= _MAX_HEADER_UUID and value.isascii() and value.isprintable()


_P = ParamSpec("_P")


def _step(
    method: Callable[Concatenate[AppendExchange, _P], Action],
) -> Callable[Concatenate[AppendExchange, _P], Action]:
    """Remember the action a public step returns in ``exchange.action``.

    A driver may hand the exchange to someone else between steps (the engine
    calls ``on_waited()`` itself); ``action`` is then still the one truth
    about what has to happen next.
    """

    @functools.wraps(method)
    def step(self: AppendExchange, /, *args: _P.args, **kwargs: _P.kwargs) -> Action:
        action = method(self, *args, **kwargs)
        self.action = action
        return action

    return step


class AppendExchange:
    """One entry's way into the chain, from first attempt to outcome.

    Args:
        entry_uuid: the entry's ``uuid`` (None for entries outside the chain).
        head: the driver's current belief of the session's chain head.
        policy: attempts and backoff.
        emit: diagnostics sink (level, event, data); data is numeric only.
    """

    __slots__ = (
        "_attempt",
        "_emit",
        "_entry_uuid",
        "_lost",
        "_policy",
        "_refused_at_head",
        "_sent",
        "action",
        "head",
    )

    def __init__(
        self,
        entry_uuid: str | None,
        head: str | None,
        policy: RetryPolicy,
        emit: Emit,
    ) -> None:
        self._entry_uuid = entry_uuid
        self.head = head
        self._policy = policy
        self._emit = emit
        self._attempt = 0
        self._sent: str | None = None  # Last-Uuid of the request in flight
        self._lost = 0  # races for the head lost in a row
        self._refused_at_head = False
        #: The action most recently returned (None before ``start``).
        self.action: Action | None = None

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def refused_at_head(self) -> bool:
        """A 409 came for a request whose ``Last-Uuid`` the session read afterwards
        found to be the head, without this entry: when the server handled the
        request, the head was not there yet. With one append in flight that
        cannot happen; with appends pipelined it means the path handed the
        server this request before its predecessor's (``AppendWindow``)."""
        return self._refused_at_head

    @_step
    def start(self, *, has_token: bool) -> Action:
        if not has_token:
            logger.debug("No session token available for session persistence")
            self._emit("error", ev.SESSION_PERSIST_FAIL_JWT_NO_TOKEN, {})
            return Done(AppendOutcome.NO_TOKEN)
        return self._next_attempt()

    @_step
    def on_response(
        self, status: int, x_last_uuid: str | None = None, retry_after: str | None = None
    ) -> Action:
        """Feed the append's HTTP reply (status and the two headers that matter)."""
        if x_last_uuid is not None and not _is_header_safe(x_last_uuid):
            # A head we could not send back as ``Last-Uuid`` (control characters,
            # non-ASCII, absurd length) is no head at all: treat the header as absent.
            x_last_uuid = None
        if status in (200, 201):
            if self._entry_uuid:
                # A uuid-less entry never becomes the server's head, so ours stays
                # as it was (forgetting it would cost a 409 round trip next time).
                self.head = self._entry_uuid
            return Done(AppendOutcome.STORED, status)
        if status == 409:
            return self._on_conflict(x_last_uuid)
        if status == 401:
            logger.debug("Session token expired or invalid")
            self._emit("error", ev.SESSION_PERSIST_FAIL_BAD_TOKEN, {})
            return Done(AppendOutcome.UNAUTHORIZED, status)
        self._emit(
            "error", ev.SESSION_PERSIST_FAIL_STATUS, {"status": status, "attempt": self._attempt}
        )
        if status in PERMANENT_STATUSES:
            self._emit("error", ev.SESSION_PERSIST_FAIL_PERMANENT, {"status": status})
            return Done(AppendOutcome.PERMANENT, status)
        server_delay = None
        if status in RETRY_AFTER_STATUSES:
            server_delay = self._policy.retry_after_delay(retry_after)
        return self._after_failure(status, server_delay)

    @_step
    def on_transport_error(self, error: BaseException | None = None) -> Action:
        """A timeout or connection error: no status, retried like a 5xx."""
        logger.debug("Error persisting session log: %s", type(error).__name__)
        self._emit("error", ev.SESSION_PERSIST_FAIL_STATUS, {"attempt": self._attempt})
        return self._after_failure(None, None)

    @_step
    def on_refetched(self, logs: Sequence[Mapping[str, Any]] | None) -> Action:
        """Feed the session read done for a header-less 409 (None: the read failed)."""
        adopted = find_last_uuid(logs)
        if self._entry_uuid and adopted == self._entry_uuid:
            # Same meaning as a 409 naming this entry: an earlier reply was lost.
            self.head = adopted
            self._emit("info", ev.SESSION_PERSIST_RECOVERED_FROM_409, {})
            return Done(AppendOutcome.ALREADY_STORED, 409)
        if self._entry_uuid and logs and any(e.get("uuid") == self._entry_uuid for e in logs):
            # Beyond: the entry is in the chain, just not at its head.
            self.head = adopted
            self._emit("info", ev.SESSION_PERSIST_DUPLICATE_ENTRY, {})
            return Done(AppendOutcome.DUPLICATE, 409)
        if adopted is None:
            self._emit("error", ev.SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION, {})
            return Done(AppendOutcome.CONFLICT, 409)
        logger.debug("Session 409: re-fetched %d entries, adopting the head", len(logs or ()))
        if adopted == self._sent:
            self._refused_at_head = True
        return self._adopt(adopted)

    @_step
    def on_waited(self) -> Action:
        if isinstance(self.action, Wait) and self.action.contention:
            return self._put()
        return self._next_attempt()

    @_step
    def on_token_lost(self) -> Action:
        """The token vanished between attempts (revoked, rotated away): fail as the seed
        does when there is none at the start, without a request."""
        logger.debug("No session token available for session persistence")
        self._emit("error", ev.SESSION_PERSIST_FAIL_JWT_NO_TOKEN, {})
        return Done(AppendOutcome.NO_TOKEN)

    @_step
    def on_refetch_unauthorized(self) -> Action:
        """The header-less 409's re-read got 401.

        The server just refused this token, and a 401 is final for an append,
        so it is final here too: retrying would resend a refused token.
        """
        self._emit("error", ev.SESSION_PERSIST_FAIL_BAD_TOKEN, {})
        return Done(AppendOutcome.UNAUTHORIZED, 401)

    # -- internals -------------------------------------------------------

    def _on_conflict(self, server_head: str | None) -> Action:
        if server_head is not None and server_head == self._entry_uuid:
            self.head = server_head
            self._lost = 0
            logger.debug("Session entry already present on server, recovering from stale state")
            self._emit("info", ev.SESSION_PERSIST_RECOVERED_FROM_409, {})
            return Done(AppendOutcome.ALREADY_STORED, 409)
        if not server_head or server_head == self._sent:
            # No head named, or the very head we sent: the chain alone cannot say
            # whether our entry is stored (a proxy may answer 409 with the request's
            # own Last-Uuid). Read the session, as the seed does, before deciding.
            return Refetch()
        return self._adopt(server_head)

    def _adopt(self, head: str) -> Action:
        """Take ``head`` as the chain head and send again.

        A head other than the one we sent is another writer's progress: a lost
        race, not a failed attempt (no attempt is used; backoff with jitter
        after the first loss in a row). The same head again uses an attempt.
        """
        logger.debug("Session 409: adopting the server's head, retrying")
        progress = head != self._sent
        self.head = head
        self._emit("info", ev.SESSION_PERSIST_409_ADOPT_SERVER_UUID, {})
        if not progress:
            return self._next_attempt()
        self._lost += 1
        if self._lost > CONTENTION_MAX_ROUNDS:
            self._emit("error", ev.SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION, {})
            return Done(AppendOutcome.CONFLICT, 409)
        if self._lost == 1:
            return self._put()
        cap = min(CONTENTION_MAX_DELAY, CONTENTION_BASE_DELAY * 2 ** min(self._lost - 2, 16))
        return Wait(random.uniform(0.0, cap), self._attempt, contention=True)

    def _put(self) -> Action:
        """Send again from the adopted head, within the current attempt."""
        self._sent = self.head
        return Put(self.head, self._attempt)

    def _next_attempt(self) -> Action:
        # The seed's 409 path `continue`s its for-loop: an adoption uses up an
        # attempt, and adopting on the last one ends the loop with no diagnostic.
        if self._attempt >= self._policy.max_attempts:
            return Done(AppendOutcome.RETRIES_EXHAUSTED, 409)
        self._attempt += 1
        self._sent = self.head
        return Put(self.head, self._attempt)

    def _after_failure(self, status: int | None, server_delay: float | None) -> Action:
        self._lost = 0
        if self._attempt >= self._policy.max_attempts:
            logger.debug("Remote persistence failed after %d attempts", self._attempt)
            self._emit(
                "error", ev.SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED, {"attempt": self._attempt}
            )
            return Done(AppendOutcome.RETRIES_EXHAUSTED, status)
        if server_delay is not None:
            delay = server_delay
            self._emit(
                "info",
                ev.SESSION_PERSIST_RETRY_AFTER,
                {"status": status, "delay_ms": round(delay * 1000)},
            )
        else:
            delay = self._policy.backoff(self._attempt)
        logger.debug(
            "Remote persistence attempt %d/%d failed, retrying in %.0fms",
            self._attempt,
            self._policy.max_attempts,
            delay * 1000,
        )
        return Wait(delay, self._attempt)
