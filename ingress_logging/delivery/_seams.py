"""The engine's seams: what it needs from a transport, a retry budget and a spool.

Each is a small Protocol with every method the engine calls, so the real
httpx client (``_transport.ClientTransport``), the engine-wide retry budget
and the durable spool plug in without touching the scheduler:

* ``Transport`` - the sync client's step API: ``begin`` an append, then
  ``advance`` it one network exchange at a time. ``Wait`` actions come back to
  the engine, which holds them on its timer heap instead of sleeping.
* ``RetryBudgetHook`` - consulted before every retry (``acquire``) and told
  about every attempt's result. ``_budget.RetryBudget`` is the default;
  ``NoRetryBudget`` (always "go") switches it off.
* ``Spool`` - a durable queue *behind* the in-memory one: ``accept`` before
  ``submit`` returns, ``acknowledge`` once the entry is delivered or failed
  for good, ``replay`` at start-up. No spool is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..diagnostics import DiagnosticSink
from ..protocol import Action, AppendExchange, Done

__all__ = [
    "NoRetryBudget",
    "Pending",
    "RetryBudgetHook",
    "Spool",
    "Transport",
    "WindowResult",
]


class Pending(Protocol):
    """One append in progress (the client's ``PendingAppend``)."""

    body: bytes
    exchange: AppendExchange

    @property
    def action(self) -> Action:
        """What has to happen next."""


class WindowResult(Protocol):
    """What a window did (the client's ``WindowResult``)."""

    @property
    def done(self) -> list[Done]:
        """Outcomes of the first entries, in order."""

    @property
    def pending(self) -> Pending | None:
        """The next entry's exchange, when it needs recovering."""


class Transport(Protocol):
    """Performs appends one step at a time; never sleeps."""

    def begin(
        self, session_id: str, entry: dict[str, Any], url: str, *, chain_parent: bool
    ) -> Pending:
        """Serialise ``entry`` and start its exchange (TypeError: not serialisable).

        ``chain_parent``: the engine filled ``entry["parentUuid"]``; every
        attempt's body names that attempt's ``Last-Uuid`` instead.
        """

    @property
    def pipeline_fallbacks(self) -> int:
        """Servers switched to one append at a time because their path reordered."""

    def window_for(self, url: str) -> int:
        """Appends of one session it would keep in flight to ``url`` now (1: one at a
        time, no ``append_window``); it adapts to failures."""

    def append_window(
        self,
        session_id: str,
        entries: list[dict[str, Any]],
        url: str,
        *,
        chain_parent: list[bool],
    ) -> WindowResult:
        """Pipeline ``entries`` (the client's ``append_window``): the outcomes of the
        first ones, and the next one's exchange when it needs recovering."""

    def advance(self, pending: Pending) -> Action:
        """Perform ``pending.action`` (a Put or Refetch) and return the next action."""

    def waited(self, pending: Pending) -> Action:
        """The backoff of a ``Wait`` has passed: return the next action."""

    def forget(self, session_id: str) -> None:
        """The engine forgot this session's chain head: forget yours too.

        Called under the scheduler's lock when an evicted session's head
        leaves the engine, so a transport's own head map stays bounded
        (``_retention``): O(1), no I/O, never raises.
        """

    def close(self) -> None:
        """Release connections (called once, by the last worker out)."""


class RetryBudgetHook(Protocol):
    """An engine-wide brake on retries (retry throttling)."""

    def acquire(self) -> float:
        """Before a retry: 0.0 to go now, else seconds to wait before asking again."""

    def record_success(self) -> None:
        """An attempt was answered with success."""

    def record_failure(self) -> None:
        """An attempt failed in a way that is retried."""

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Register a callback for when held-back retries may go at once."""

    def set_diagnostics(self, sink: DiagnosticSink | None) -> None:
        """Where the budget reports that it closed (called outside its lock)."""

    def snapshot(self) -> object | None:
        """The budget in numbers for ``Health.retry_budget`` (None: nothing to say)."""


class NoRetryBudget:
    """The no-op budget: every retry may go when its backoff has passed."""

    __slots__ = ()

    def acquire(self) -> float:
        return 0.0

    def record_success(self) -> None:
        return None

    def record_failure(self) -> None:
        return None

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        return None

    def set_diagnostics(self, sink: DiagnosticSink | None) -> None:
        return None

    def snapshot(self) -> None:
        return None

    def __repr__(self) -> str:
        return "NoRetryBudget()"


class Spool(Protocol):
    """A durable queue behind the in-memory one.

    With a spool, ``submit`` builds the entry on the caller's thread and fills
    its ``uuid`` there (a replay must resend the same uuid so the server's 409
    recovery makes it harmless), then calls ``accept`` before returning.
    """

    def accept(self, session_id: str, entry: dict[str, Any]) -> object:
        """Persist one accepted entry; return a key for ``acknowledge``."""

    def acknowledge(self, key: object) -> None:
        """The entry was delivered or failed for good: forget it."""

    def replay(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """Entries a previous run accepted and never acknowledged, in order."""

    def stats(self) -> object:
        """The spool in numbers for ``Health.spool``."""

    @property
    def closed(self) -> bool:
        """``close()`` was called."""

    def close(self) -> None:
        """Release the store (and its inter-process lock)."""
