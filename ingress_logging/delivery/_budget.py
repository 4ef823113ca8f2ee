"""The engine-wide retry budget: one token bucket that stops retry storms.

Per-session backoff alone lets every session retry on its own clock: when
the server fails for fifty sessions at once, fifty clocks keep hammering a
server that is trying to recover. The budget is shared by every session of
one engine and works like gRPC's retry throttling (gRFC A6) and the AWS
SDKs' retry quota:

* the bucket starts full, at ``max_tokens``;
* every failed attempt (5xx, 429, timeout, connection error) costs 1 token;
* every success earns ``token_ratio`` tokens (capped at ``max_tokens``);
* a *retry* is allowed only while ``tokens > max_tokens / 2``. First
  attempts are never gated, only counted, as in gRPC.

Where this goes beyond gRPC: a denied retry does not fail the entry. The
entry **waits** (its attempt count is untouched) and asks again. Since a
bucket that nobody may retry against never earns tokens back, the budget
hands out one **probe** per ``probe_interval`` while it is closed: the first
waiter to ask after the interval may retry. A success recorded after a probe
was granted proves that the server answers again, so the budget re-opens
to three quarters (``max_tokens * 3 / 4``: a quarter of the bucket above the
threshold) and wakes the waiters (``set_wakeup``); the normal accounting
then decides how far the re-opening goes. Re-opening just above the
threshold (gRPC's arithmetic alone) was measured in the chaos test: with a
3 % background error rate the bucket hovered at the threshold for ~30 s
after a server restart, each retry waiting for a probe.

The bound this gives, during a full outage of ``S`` sessions lasting ``T``
seconds, starting with a full bucket: at most
``S + max_tokens / 2 + T / probe_interval + 1`` requests (first attempts,
the retries the full half of the bucket pays for, and the probes), plus the
requests already in flight when the bucket closed (at most the engine's
concurrency). A server that flaps (a probe succeeds, then it fails again)
costs at most ``max_tokens / 4`` more retries per successful probe.

The state is readable as numbers (``snapshot()``) for the engine's health.
Everything is guarded by one lock; each call is a few arithmetic operations.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..diagnostics import RETRY_BUDGET_EXHAUSTED, DiagnosticSink

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_TOKEN_RATIO",
    "RetryBudget",
    "RetryBudgetState",
]

#: gRPC's limits: 0 < max_tokens <= 1000, 0 < token_ratio <= 1.
DEFAULT_MAX_TOKENS: Final = 100.0
DEFAULT_TOKEN_RATIO: Final = 0.1
#: One retry per this many seconds while the bucket is closed.
DEFAULT_PROBE_INTERVAL: Final = 1.0


@dataclass(frozen=True, slots=True)
class RetryBudgetState:
    """The budget in numbers, for ``Health`` and the fault suite.

    ``retries_denied`` counts every time a retry was held back (one waiting
    entry that asks three times counts three); ``probes`` counts retries
    granted while the bucket was closed; ``reopened`` counts how often a
    successful probe re-opened it; ``exhausted`` how often it closed.
    """

    tokens: float
    max_tokens: float
    token_ratio: float
    open: bool
    retries_allowed: int
    retries_denied: int
    probes: int
    reopened: int
    exhausted: int


class RetryBudget:
    """A thread-safe token bucket consulted before every retry.

    Args:
        max_tokens: bucket size; retries stop at half of it (gRPC default 100
            is ours too; gRPC caps it at 1000).
        token_ratio: tokens earned per success, in (0, 1].
        probe_interval: seconds between two probes while the bucket is closed.
        clock: monotonic seconds (tests pass a fake clock).

    The driver calls :meth:`record_failure` / :meth:`record_success` after
    every attempt, first attempts included, and :meth:`acquire` before each
    retry: ``0.0`` means "retry now"; a positive number means "do not retry
    yet, ask again in that many seconds (or when woken)".
    """

    __slots__ = (
        "__weakref__",
        "_allowed",
        "_clock",
        "_denied",
        "_diagnostics",
        "_exhausted",
        "_lock",
        "_max",
        "_next_probe",
        "_probe_interval",
        "_probe_out",
        "_probes",
        "_ratio",
        "_reopen_level",
        "_reopened",
        "_threshold",
        "_tokens",
        "_wakeup",
    )

    def __init__(
        self,
        max_tokens: float = DEFAULT_MAX_TOKENS,
        token_ratio: float = DEFAULT_TOKEN_RATIO,
        *,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_tokens, bool) or not 0 < max_tokens <= 1000:
            raise ValueError("max_tokens must be in (0, 1000]")
        if isinstance(token_ratio, bool) or not 0 < token_ratio <= 1:
            raise ValueError("token_ratio must be in (0, 1]")
        if isinstance(probe_interval, bool) or not 0 <= probe_interval <= 3600:
            raise ValueError("probe_interval must be in [0, 3600] seconds")
        self._lock = threading.Lock()
        self._max = float(max_tokens)
        self._ratio = float(token_ratio)
        self._threshold = self._max / 2
        self._reopen_level = self._max * 3 / 4
        self._tokens = self._max
        self._probe_interval = float(probe_interval)
        self._clock = clock
        self._next_probe = 0.0  # clock value from which the next probe may go
        self._probe_out = False  # a probe was granted and no success seen since
        self._allowed = 0
        self._denied = 0
        self._probes = 0
        self._reopened = 0
        self._exhausted = 0
        self._wakeup: Callable[[], None] | None = None
        self._diagnostics: DiagnosticSink | None = None
        # A fork while another thread holds the lock would leave the child's
        # copy locked forever: the child gets a fresh one.
        ref = weakref.ref(self)

        def _new_lock_in_child() -> None:
            budget = ref()
            if budget is not None:
                budget._lock = threading.Lock()

        os.register_at_fork(after_in_child=_new_lock_in_child)

    def __repr__(self) -> str:
        s = self.snapshot()
        return (
            f"RetryBudget(tokens={s.tokens:.1f}/{s.max_tokens:g}, "
            f"ratio={s.token_ratio:g}, open={s.open}, denied={s.retries_denied})"
        )

    @property
    def probe_interval(self) -> float:
        return self._probe_interval

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Called (outside the lock) when a probe's success re-opens the bucket,
        so the driver can release the entries it holds back at once."""
        self._wakeup = callback

    def set_diagnostics(self, sink: DiagnosticSink | None) -> None:
        """Where ``retry_budget_exhausted`` goes each time the bucket closes
        (``{"tokens", "exhausted"}``; called outside the lock, must not block)."""
        self._diagnostics = sink

    def record_success(self) -> None:
        """An attempt (first or retry) was answered with success."""
        wake = None
        with self._lock:
            if self._probe_out and self._tokens <= self._threshold:
                # Beyond gRPC: the server answers again; re-open to 3/4.
                self._tokens = self._reopen_level
                self._reopened += 1
                wake = self._wakeup
            else:
                self._tokens = min(self._max, self._tokens + self._ratio)
            self._probe_out = False
        if wake is not None:
            wake()

    def record_failure(self) -> None:
        """An attempt failed in a way that is retried (5xx, 429, transport error)."""
        report = None
        with self._lock:
            was_open = self._tokens > self._threshold
            self._tokens = max(0.0, self._tokens - 1.0)
            if self._tokens <= self._threshold:
                if was_open:
                    self._exhausted += 1
                    report = {"tokens": round(self._tokens, 1), "exhausted": self._exhausted}
                # Closed (just now, or a probe failed): the next probe waits a
                # full interval from this failure.
                self._next_probe = max(self._next_probe, self._clock() + self._probe_interval)
                self._probe_out = False
        sink = self._diagnostics
        if report is not None and sink is not None:
            sink("warn", RETRY_BUDGET_EXHAUSTED, report)

    def acquire(self) -> float:
        """May a retry go now? ``0.0``: yes; else seconds until asking again."""
        with self._lock:
            if self._tokens > self._threshold:
                self._allowed += 1
                return 0.0
            now = self._clock()
            if now >= self._next_probe:
                self._next_probe = now + self._probe_interval
                self._probe_out = True
                self._probes += 1
                return 0.0
            self._denied += 1
            return max(self._next_probe - now, 1e-3)

    def snapshot(self) -> RetryBudgetState:
        with self._lock:
            return RetryBudgetState(
                tokens=self._tokens,
                max_tokens=self._max,
                token_ratio=self._ratio,
                open=self._tokens > self._threshold,
                retries_allowed=self._allowed,
                retries_denied=self._denied,
                probes=self._probes,
                reopened=self._reopened,
                exhausted=self._exhausted,
            )
