"""Several appends of one session in flight: the chain as a sequence number.

``AppendWindow`` is sans-I/O, like ``AppendExchange``. It holds a session's
queue of entries (by position and ``uuid``) and the chain head, and says which
appends to write: entry k+1 carries ``Last-Uuid: uuid(k)`` before k is
acknowledged, up to ``window`` in flight on one keep-alive connection
(requests written back to back, replies read in order), as Kafka's idempotent
producer keeps several batches in flight per partition. The server accepts
k+1 only if k is stored, so order and exactly-once come from the chain, not
from waiting.

The driver loop::

    window.add(uuid)                      # per entry, in submission order -> its seq
    for send in window.to_send():         # write these back to back
        ...                               # PUT, Last-Uuid = send.last_uuid
    window.on_reply(status, x_last_uuid, retry_after)   # per reply, in order
    window.on_lost()                      # the connection died: the rest are lost
    if window.recovery is not None:       # one entry, alone: drive this exchange
        ...                               # Put/Refetch/Wait as for any append
        window.on_recovered(done)         # with its Done
    window.take_outcomes()                # [(seq, Done)], in order

Recovery is from the chain. When a reply in the window is a failure (5xx,
429, a dropped connection, a lost reply, an unexplained 409), no new append is
written; the replies still in flight are read (later entries of the window
are answered 409 or lost with it). Then the stored prefix is determined from
what the replies prove - a 2xx for entry s, or a 409 naming ``uuid(s)`` as
the head, proves s and everything before it stored, since the server accepted
s only after its predecessor - and the first entry not proven stored goes
through an ordinary ``AppendExchange`` on its own, fed the reply it got (so
the seed's backoff, ``Retry-After``, 409 adoption and re-read apply exactly).
Once it is done, pipelining resumes after it. A resend of an entry that was
stored after all is answered 409 naming it, which the exchange counts as
already stored.

Entries without a ``uuid`` (summaries) cannot be confirmed by the head: they
are a barrier, written alone with nothing in flight before or after them.

An entry that fails for good (a permanent status, its attempts spent, no
token) stops the window (``stopped``): nothing after it is written, and
whatever was in flight behind it was refused with it (its ``Last-Uuid``
never became the head). The driver takes the outcomes and appends the rest
again in a new window - after what takes the failed entry's place in the
chain (the delivery engine's gap entry), so that stays in order.

A path that does not keep order (a proxy spreading one connection's requests
over several, or one that does not support pipelining and forwards them at
once) hands the server entry k before entry k-1, although k-1's request was
written first. The evidence is a 409 for k, sent with ``Last-Uuid: uuid(k-1)``,
while k-1 is stored after all. It comes in two shapes:

* within the window: k's 409 names a head from before ``uuid(k-1)`` and k-1
  was acknowledged in the same window. The window then drops to 1 for good
  (``reordered`` is set);
* across exchanges: k's 409 names no head (a new session has none; an older
  server sends none) or names ``uuid(k-1)`` itself, so the window cannot
  tell; k goes to recovery, whose exchange reads the session and finds the
  head at ``uuid(k-1)`` without k (``AppendExchange.refused_at_head``). That
  answer comes after this window handed the recovery to its driver, so the
  window says what to watch: ``recovery_behind`` is True when the recovering
  entry was written while its predecessor's append was in flight, and
  :func:`reorder_shown` tells the driver, once the exchange went on, whether
  it proved the path reordered (the driver then goes one at a time too).

On a path that keeps order neither can happen: k-1 is handled first, so k
meets ``uuid(k-1)`` as the head. The driver reports a fallback once per
origin and counts it. Correctness never depends on the path keeping order: at
worst it costs a few resends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from ._append import AppendExchange, AppendOutcome, Done, Emit
from ._retry import RetryPolicy

__all__ = ["DEFAULT_WINDOW", "AppendWindow", "Send", "reorder_shown"]

#: Appends in flight per session by default. Measured (benchmarks/bench_network.py,
#: window): one session across a 50 ms round trip delivers 0.9 / 4.7 / 7.4 / 14.7 /
#: 28.3 entries per round trip at a window of 1 / 5 / 8 / 16 / 32; 16 is the
#: smallest power of two past the 8-per-round-trip target, and bounds what a
#: failure costs in resends. (Kafka's idempotent producer keeps 5 batches.)
DEFAULT_WINDOW: Final = 16


@dataclass(frozen=True, slots=True)
class Send:
    """Write the append of entry ``seq`` with this ``Last-Uuid`` (None: omit it)."""

    seq: int
    last_uuid: str | None


def reorder_shown(exchange: AppendExchange, *, behind: bool) -> bool:
    """Whether a recovery exchange proved the path reorders appends.

    ``behind``: the window's ``recovery_behind`` for it (its entry was written
    while its predecessor's append was in flight). Ask after any step.
    """
    return behind and exchange.refused_at_head


@dataclass(slots=True)
class _Item:
    seq: int
    uuid: str | None
    sent_last: str | None = None
    # Written while the append before it was in flight (pipelined behind it).
    behind: bool = False
    # The reply this item got in the current window: (status or None if lost, x-last-uuid,
    # retry-after). Filled in order while the window drains.
    reply: tuple[int | None, str | None, str | None] | None = None


_NO_REPLY: Final = (None, None, None)
_SUPERSEDED: Final = 64


class AppendWindow:
    """One session's appends, pipelined on the chain (see the module docstring).

    The window adapts, as TCP's congestion window does: any failure drops it
    to 1 (so an outage costs no more requests than one append at a time, and
    the retry budget keeps governing them), and each append acknowledged
    with a 2xx widens it by one (doubling per round trip) up to ``window``.

    Args:
        head: the driver's belief of the session's chain head.
        window: appends in flight at most (1: one at a time, like the seed).
        policy: attempts and backoff, per entry.
        emit: diagnostics sink (level, event, data).
        start: the window to begin with (default ``window``); a driver passes
            what the previous window of the same origin ended with.
    """

    def __init__(
        self,
        head: str | None,
        *,
        window: int,
        policy: RetryPolicy,
        emit: Emit,
        start: int | None = None,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, not {window!r}")
        self.head = head
        #: The most appends in flight; 1 once the path was seen to reorder.
        self.limit = window
        #: The appends in flight allowed now (1..limit).
        self.window = window if start is None else max(1, min(start, window))
        self._policy = policy
        self._emit = emit
        self._next_seq = 0
        self._pending: deque[_Item] = deque()  # unresolved, in order; the first _inflight sent
        self._inflight = 0
        self._replied = 0  # replies read among the in-flight items
        self._draining = False  # a failure was seen: read the rest, write nothing new
        self._outcomes: list[tuple[int, Done]] = []
        #: The single-entry exchange the driver must drive now (None: pipelining).
        self.recovery: AppendExchange | None = None
        #: The recovering entry was written behind its predecessor's append: its
        #: exchange may yet show the path reordered them (``reorder_shown``).
        self.recovery_behind = False
        self._recovering: _Item | None = None
        #: True once the path was seen to reorder appends; the window is then 1.
        self.reordered = False
        self._stopped = False
        # Heads this window moved past: a 409 naming one of them for an entry sent
        # after it was superseded means the server saw requests out of order.
        self._superseded: deque[str] = deque(maxlen=_SUPERSEDED)

    # --- queue -----------------------------------------------------------------

    def add(self, uuid: str | None) -> int:
        """Queue the next entry of the session; returns its ``seq``."""
        seq = self._next_seq
        self._next_seq += 1
        self._pending.append(_Item(seq, uuid or None))
        return seq

    @property
    def in_flight(self) -> int:
        """Appends written whose replies were not read yet."""
        return self._inflight - self._replied

    @property
    def recovering_seq(self) -> int | None:
        """The ``seq`` of the entry ``recovery`` is for (None: no recovery)."""
        return None if self._recovering is None else self._recovering.seq

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing in flight, no recovery."""
        return not self._pending and self.recovery is None

    @property
    def stopped(self) -> bool:
        """An entry failed for good: nothing more is written (see the module docstring).
        The entries still queued are the driver's to append again."""
        return self._stopped

    def on_no_token(self) -> None:
        """No token for the next append: it fails as the seed fails it, without a request."""
        if self.in_flight or self.recovery is not None or not self._pending:
            raise RuntimeError("on_no_token needs a queued entry and nothing in flight")
        item = self._pending[0]
        exchange = AppendExchange(item.uuid, self.head, self._policy, self._emit)
        done = exchange.start(has_token=False)
        assert isinstance(done, Done)
        self._pending.popleft()
        self._outcomes.append((item.seq, done))
        self._stopped = True

    def take_outcomes(self) -> list[tuple[int, Done]]:
        """Entries finished since the last call, in order: ``(seq, Done)``."""
        outcomes, self._outcomes = self._outcomes, []
        return outcomes

    # --- pipelining ------------------------------------------------------------

    def to_send(self) -> list[Send]:
        """The appends to write now, back to back (empty while draining or recovering,
        and once ``stopped``)."""
        if self._draining or self.recovery is not None or self._stopped:
            return []
        sends: list[Send] = []
        limit = self.window
        while self._inflight < min(limit, len(self._pending)):
            item = self._pending[self._inflight]
            if item.uuid is None and self._inflight:
                break  # a barrier waits until everything before it is answered
            if self._inflight and self._pending[self._inflight - 1].uuid is None:
                break  # ... and nothing goes after it until it is answered
            last = self.head if self._inflight == 0 else self._pending[self._inflight - 1].uuid
            item.sent_last = last
            item.behind = self._inflight > 0
            item.reply = None
            sends.append(Send(item.seq, last))
            self._inflight += 1
        return sends

    def on_reply(
        self, status: int, x_last_uuid: str | None = None, retry_after: str | None = None
    ) -> None:
        """The reply to the oldest append in flight."""
        if self.in_flight <= 0:
            raise RuntimeError("no append in flight")
        if not self._draining and self._replied == 0:
            item = self._pending[0]
            if status in (200, 201) or (
                status == 409 and item.uuid is not None and x_last_uuid == item.uuid
            ):
                self._confirm_first(AppendOutcome.STORED if status != 409 else None, status)
                return
            self._draining = True
        self._pending[self._replied].reply = (status, x_last_uuid, retry_after)
        self._replied += 1
        if self._replied == self._inflight:
            self._resolve()

    def on_lost(self) -> None:
        """The connection ended: every append in flight without a reply is lost."""
        if self.in_flight <= 0:
            return
        self._draining = True
        while self._replied < self._inflight:
            self._pending[self._replied].reply = _NO_REPLY
            self._replied += 1
        self._resolve()

    def on_recovered(self, done: Done) -> None:
        """The recovery exchange ended; its entry is finished, pipelining resumes."""
        exchange, item = self.recovery, self._recovering
        if exchange is None or item is None:
            raise RuntimeError("no recovery in progress")
        self.recovery = self._recovering = None
        if reorder_shown(exchange, behind=self.recovery_behind):
            self._fall_back()
        self.recovery_behind = False
        if exchange.head != self.head:
            self._advance(exchange.head)
        self._pending.popleft()
        self._outcomes.append((item.seq, done))
        if not done.ok:
            self._stopped = True

    # --- internals -------------------------------------------------------------

    def _confirm_first(self, outcome: AppendOutcome | None, status: int) -> None:
        """The first pending item is stored (its own reply said so)."""
        item = self._pending.popleft()
        self._inflight -= 1
        self._advance(item.uuid)
        if outcome is None:
            outcome = AppendOutcome.ALREADY_STORED
        else:
            self.window = min(self.limit, self.window + 1)
        self._outcomes.append((item.seq, Done(outcome, status)))

    def _resolve(self) -> None:
        """Every reply of the drained window is in: settle the stored prefix, recover."""
        window = [self._pending[i] for i in range(self._inflight)]
        self._inflight = self._replied = 0
        self._draining = False
        self.window = 1  # a failure: one in flight until acknowledgements widen it again
        # What the replies prove: the last position known stored.
        position = {item.uuid: i for i, item in enumerate(window) if item.uuid is not None}
        proven = -1
        for i, item in enumerate(window):
            status, named, _ = item.reply or _NO_REPLY
            if status in (200, 201):
                proven = max(proven, i)
            elif (
                status == 409
                and named is not None
                and named in position
                and named != item.sent_last
            ):
                # A 409 naming the head this request itself sent proves nothing
                # (a proxy may echo ``Last-Uuid``): the exchange reads the session.
                proven = max(proven, position[named])
        for _ in range(proven + 1):
            item = self._pending.popleft()
            status = (item.reply or _NO_REPLY)[0]
            ok = status in (200, 201)
            self._advance(item.uuid)
            outcome = AppendOutcome.STORED if ok else AppendOutcome.ALREADY_STORED
            self._outcomes.append((item.seq, Done(outcome, status if ok else 409)))
        if not self._pending or proven + 1 >= len(window):
            return
        first = self._pending[0]
        status, named, retry_after = first.reply or _NO_REPLY
        exchange = AppendExchange(first.uuid, self.head, self._policy, self._emit)
        exchange.start(has_token=True)  # the attempt the window already made
        if (
            status == 409
            and named is not None
            and first.sent_last == self.head
            and named in self._superseded
        ):
            # Its predecessor was acknowledged before, yet the server saw an older
            # head when it handled this one: the path does not keep order. Not the
            # entry's fault: it is sent again at once, alone, as a first attempt.
            self._fall_back()
            exchange = AppendExchange(first.uuid, self.head, self._policy, self._emit)
            exchange.start(has_token=True)
        elif status is None:
            exchange.on_transport_error(None)
        else:
            exchange.on_response(status, named, retry_after)
        self._recovering = first
        self.recovery = exchange
        self.recovery_behind = first.behind
        action = exchange.action
        if isinstance(action, Done):  # e.g. a permanent status: nothing to drive
            self.on_recovered(action)

    def _fall_back(self) -> None:
        """The path reorders appends: one in flight from now on."""
        self.reordered = True
        self.limit = self.window = 1

    def _advance(self, uuid: str | None) -> None:
        """The chain moved past the current head to ``uuid`` (None: a barrier, no move)."""
        if uuid is None:
            return
        if self.head is not None:
            self._superseded.append(self.head)
        self.head = uuid
