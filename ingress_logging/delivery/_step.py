"""``Stepper``: one step of one session, outside the scheduler's lock.

Build the entry, thread a gap entry in, perform one request.

A *step* is at most one network exchange (a PUT or the GET after a bare
409), so a worker comes back to the scheduler between requests and a backoff
never occupies a thread. What a step does:

1. no exchange in progress: build the entry (call the builder), fill
   ``uuid``/``parentUuid``/``sessionId``, run ``host.prepare_entry`` (None:
   dropped), then - if entries of this session were lost since the last
   delivery - start a gap entry first, else start the entry itself;
2. a ``Wait`` whose time has come: ask the retry budget; held back -> wait
   again, else resume the exchange;
3. perform the pending Put/Refetch and look at the next action.

The result is a ``Step``; the engine books it under its lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .. import diagnostics as ev
from .._host import Host
from ..protocol import Action, AppendOutcome, Done, Put, Refetch, Wait
from ._reporter import Reporter
from ._seams import RetryBudgetHook, Transport
from ._session import Item, Prepared, SessionState, fill_entry, gap_entry
from ._types import DROP_BUILD_ERROR, DROP_PREPARE, FAIL_UNSERIALISABLE, Outcome

__all__ = ["Step", "Stepper"]

DELIVERED: Final = Outcome.DELIVERED
FAILED: Final = Outcome.FAILED
DROPPED: Final = Outcome.DROPPED


@dataclass(slots=True)
class Step:
    """What one step did. ``kind`` set: the current item is finished."""

    wait: float | None = None
    kind: Outcome | None = None
    reason: str | None = None
    retried: bool = False
    held: bool = False  # ``wait`` comes from the retry budget, not the backoff
    gap_written: tuple[str, int, dict[str, int]] | None = None
    body_size: int = 0
    #: Items of a pipelined window finished after ``current``, in order.
    finished: list[tuple[Item, Outcome, str | None]] | None = None
    #: The window's first entry to recover when it is not ``current`` (which is then
    #: finished): it becomes ``current``, its exchange in ``s.pending``.
    promote: Item | None = None


class Stepper:
    """Runs steps; shared by all workers (it holds no per-session state)."""

    def __init__(
        self,
        *,
        host: Host,
        transport: Callable[[], Transport],
        budget: RetryBudgetHook,
        reporter: Reporter,
        gap_snapshot: Callable[[SessionState], tuple[int, dict[str, int]]],
        take_batch: Callable[[SessionState, int], list[Item]],
    ) -> None:
        self._host = host
        self._transport = transport
        self._budget = budget
        self._reporter = reporter
        self._gap_snapshot = gap_snapshot
        self._take_batch = take_batch

    def step(self, s: SessionState) -> Step:
        try:
            return self._step(s)
        except Exception as exc:  # one bad entry never kills a worker
            s.pending = None
            s.gap_sending = False
            s.gap_snapshot = None
            s.gap_skip = False
            s.current_entry = None
            reason = f"error:{type(exc).__name__}"
            self._reporter.event("error", ev.DELIVERY_FAILED, {"count": 1, "reason": reason})
            return Step(kind=FAILED, reason=reason)

    def _step(self, s: SessionState) -> Step:
        pending = s.pending
        out = Step()
        if pending is None:
            if s.current_entry is None:
                built = self._build(s)
                if isinstance(built, str):
                    return Step(kind=DROPPED, reason=built)
                s.current_entry = built
                item = s.current
                if item is not None and item.prepared is not Prepared.NO:
                    s.filled_parent = item.prepared is Prepared.FILLED
            transport = self._transport()
            url = self._host.session_url(s.session_id)
            entry = s.current_entry
            window = transport.window_for(url)
            if window > 1 and not s.gap_count and not s.gap_skip:
                return self._window(s, transport, url, window)
            if s.gap_count and not s.gap_skip:
                count, reasons = self._gap_snapshot(s)
                gap = gap_entry(s.session_id, s.parent, count, reasons)
                s.gap_snapshot = (gap["uuid"], count, reasons)
                if s.filled_parent:
                    entry["parentUuid"] = gap["uuid"]
                pending = transport.begin(s.session_id, gap, url, chain_parent=True)
                s.gap_sending = True
            else:
                try:
                    pending = transport.begin(
                        s.session_id, entry, url, chain_parent=s.filled_parent
                    )
                except TypeError:
                    s.current_entry = None
                    return Step(kind=FAILED, reason=FAIL_UNSERIALISABLE)
                out.body_size = len(pending.body)
            s.pending = pending
            action = pending.action
        else:
            action = pending.action
            if isinstance(action, Wait):
                hold = 0.0 if action.contention else self._budget.acquire()
                if hold > 0:
                    out.wait = hold
                    out.held = True
                    return out
                action = self._transport().waited(pending)
        if isinstance(action, Put | Refetch):
            action = self._transport().advance(pending)
        return self._after(s, action, out)

    def _build(self, s: SessionState) -> dict[str, Any] | str:
        item = s.current
        assert item is not None
        built = self._build_item(s, item, s.parent)
        if isinstance(built, str):
            return built
        entry, filled = built
        if item.prepared is Prepared.NO:
            s.filled_parent = filled
        return entry

    def _build_item(
        self, s: SessionState, item: Item, parent: str | None
    ) -> tuple[dict[str, Any], bool] | str:
        """(entry, parentUuid filled here) or the drop reason; ``parent`` for the filling."""
        source = item.entry
        if item.prepared is not Prepared.NO and isinstance(source, dict):
            return source, item.prepared is Prepared.FILLED
        context, item.context = item.context, None
        if context is None:
            return self._build_and_prepare(s, item, source, parent)
        return context.run(self._build_and_prepare, s, item, source, parent)

    def _build_and_prepare(
        self, s: SessionState, item: Item, source: object, parent: str | None
    ) -> tuple[dict[str, Any], bool] | str:
        try:
            entry = source() if callable(source) else source
        except Exception:
            return DROP_BUILD_ERROR
        if not isinstance(entry, dict):
            return DROP_BUILD_ERROR
        filled = fill_entry(entry, s.session_id, parent)
        prepared = self._host.prepare_entry(entry, item.record)
        if prepared is None:
            return DROP_PREPARE
        return prepared, filled

    # -- a pipelined window ---------------------------------------------------

    def _window(self, s: SessionState, transport: Transport, url: str, window: int) -> Step:
        """Send ``current`` and the session's next entries as one window.

        The entries are built in order, each ``parentUuid`` filled with the
        uuid before it. Every entry the window proves stored is booked at once;
        the first one it could not prove goes on alone, as ``current`` with its
        exchange in ``s.pending`` (backoff on the scheduler's timers, as for
        any append); the ones after it stay taken, built, for the next steps.
        """
        current = s.current
        first = s.current_entry
        assert current is not None
        assert first is not None
        items = [current]
        entries = [first]
        filled = [s.filled_parent]
        out = Step()
        parent = first.get("uuid") or s.parent
        for item in self._take_batch(s, window - 1):
            built = self._build_item(s, item, parent)
            if isinstance(built, str):
                # Lost before it was sent: it ends the window (its gap entry goes
                # before the next entry, on the ordinary path).
                out.finished = [(item, DROPPED, built)]
                break
            entry, was_filled = built
            item.entry, item.context = entry, None
            item.prepared = Prepared.FILLED if was_filled else Prepared.YES
            items.append(item)
            entries.append(entry)
            filled.append(was_filled)
            parent = entry.get("uuid") or parent
        try:
            result = transport.append_window(s.session_id, entries, url, chain_parent=filled)
        except TypeError:
            # One of them cannot be serialised: send them one at a time instead,
            # so that only that one fails.
            return self._alone(s, transport, url, out)
        finished: list[tuple[Item, Outcome, str | None]] = out.finished or []
        head: list[tuple[Item, Outcome, str | None]] = []
        for item, entry, done in zip(items, entries, result.done, strict=False):
            head.append((item, *self._outcome(s, entry, done)))
        if head:
            _, out.kind, out.reason = head[0]
            finished[:0] = head[1:]
        out.finished = finished or None
        pending = result.pending
        if pending is None:
            s.current_entry = None
            return out
        j = len(result.done)
        s.pending = pending
        s.current_entry = entries[j]
        s.filled_parent = filled[j]
        if j:
            out.promote = items[j]
        return self._after(s, pending.action, out)

    def _alone(self, s: SessionState, transport: Transport, url: str, out: Step) -> Step:
        entry = s.current_entry
        assert entry is not None
        try:
            pending = transport.begin(s.session_id, entry, url, chain_parent=s.filled_parent)
        except TypeError:
            s.current_entry = None
            out.kind, out.reason = FAILED, FAIL_UNSERIALISABLE
            return out
        out.body_size = len(pending.body)
        s.pending = pending
        return self._after(s, self._transport().advance(pending), out)

    def _outcome(
        self, s: SessionState, entry: dict[str, Any], done: Done
    ) -> tuple[Outcome, str | None]:
        """Book one finished entry of a window: the budget, the parent, a diagnostic."""
        if done.ok:
            self._budget.record_success()
            uuid = entry.get("uuid")
            if isinstance(uuid, str) and uuid:
                s.parent = uuid
            return DELIVERED, None
        if done.outcome is AppendOutcome.RETRIES_EXHAUSTED:
            self._budget.record_failure()
        reason = done.outcome.value
        data: dict[str, int | str | None] = {"count": 1, "reason": reason}
        if done.status is not None:
            data["status"] = done.status
        self._reporter.event("error", ev.DELIVERY_FAILED, data)
        return FAILED, reason

    def _after(self, s: SessionState, action: Action, out: Step) -> Step:
        if isinstance(action, Wait):
            if not action.contention:  # a lost race is not a failure of the server
                self._budget.record_failure()
                out.retried = True
            out.wait = action.delay
            return out
        if not isinstance(action, Done):
            return out  # a Put after adopting the server's head, or a Refetch: go on
        s.pending = None
        if s.gap_sending:
            s.gap_sending = False
            snapshot = s.gap_snapshot
            s.gap_snapshot = None
            assert snapshot is not None
            if action.ok:
                self._budget.record_success()
                s.parent = snapshot[0]
                out.gap_written = snapshot
                self._reporter.event("info", ev.DELIVERY_GAP_WRITTEN, {"count": snapshot[1]})
            else:
                # The marker did not make it; send the entry anyway (its data
                # matters more) and try the marker again before the next one.
                s.gap_skip = True
                if s.filled_parent and s.current_entry is not None:
                    s.current_entry["parentUuid"] = s.parent
            return out
        entry = s.current_entry
        s.current_entry = None
        s.gap_skip = False
        if action.ok:
            self._budget.record_success()
            uuid = entry.get("uuid") if entry is not None else None
            if isinstance(uuid, str) and uuid:
                s.parent = uuid
            out.kind = DELIVERED
            return out
        if action.outcome is AppendOutcome.RETRIES_EXHAUSTED:
            self._budget.record_failure()
        reason = action.outcome.value
        data: dict[str, int | str | None] = {"count": 1, "reason": reason}
        if action.status is not None:
            data["status"] = action.status
        self._reporter.event("error", ev.DELIVERY_FAILED, data)
        out.kind = FAILED
        out.reason = reason
        return out
