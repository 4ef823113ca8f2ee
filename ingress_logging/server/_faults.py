"""Fault injection for the local server: the failures a client must survive.

Everything is off by default. Switch faults on from Python
(``srv.faults.fail_next(2)``), over HTTP (``POST /_admin/faults`` with the
server's bearer token and a JSON body for :meth:`FaultInjector.configure`),
or per run (``serve(..., faults={...})`` / ``--faults JSON`` on the command
line). Every switch is safe to flip while requests are in flight.

Two kinds of switches:

* **Standing** switches stay on until changed: :attr:`FaultInjector.latency`,
  :meth:`FaultInjector.fail_share`, :attr:`FaultInjector.omit_conflict_head`,
  :attr:`FaultInjector.endless_teleport_cursor`.
* **Scripted** faults are consumed one request at a time, first in, first
  out: ``fail_next(2)`` then ``drop_after_commit_next()`` means "the next two
  PUTs get a 503, the third is stored and its connection dropped". Each can
  be limited to one session (``session_id=``), then only requests for that
  session consume it. They apply to PUTs unless ``method="GET"`` is given
  (GET covers the read and the teleport-events endpoints).

Scripted faults and the share are only consulted for requests that passed
authentication and validation: a 401, 400 or 413 is never masked by a fault
and never consumes one. Latency applies to every data request.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from ._fault_spec import (
    FaultDecision,
    FaultSpec,
    Method,
    QueuedFault,
    ScriptStep,
    ShareSpec,
    check_seconds,
    conflict_without_head_batch,
    drop_after_commit_batch,
    error_after_commit_batch,
    fail_batch,
    foreign_write_batch,
    parse_spec,
    script_batches,
    share_spec,
)

__all__ = ["FaultDecision", "FaultInjector", "ScriptStep"]

_NO_FAULT = FaultDecision()


@dataclass(slots=True)
class _Share:
    spec: ShareSpec
    rng: random.Random = field(repr=False)


class FaultInjector:
    """Runtime fault switches of one server (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[QueuedFault] = []
        self._share: _Share | None = None
        self._latency = 0.0
        self.omit_conflict_head = False
        """When True, every genuine 409 (chain conflict or duplicate uuid) is
        sent without ``x-last-uuid``, like an older server; nothing else changes."""
        self.endless_teleport_cursor = False
        """When True, teleport-events pages always carry a ``next_cursor``: after
        the last real event the pages come back empty, forever (page-cap tests)."""
        self.quiet = True
        """True while no fault can touch a request: nothing scripted, no share,
        no latency (the server then answers a plain append without consulting
        :meth:`decide`; the two switches above are read at reply time)."""

    # --- standing switches ------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds every data request waits before it is handled (0 = off)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._apply(FaultSpec(latency=check_seconds(seconds, "latency")))

    def fail_share(
        self,
        share: float,
        *,
        status: int = 503,
        seed: int | None = 0,
        retry_after: float | None = None,
        method: Method = "PUT",
    ) -> None:
        """Reply ``status`` (nothing stored) to a random ``share`` (0..1) of requests.

        The draw uses ``random.Random(seed)``, so a run is reproducible for a
        given request order. ``retry_after`` adds a ``Retry-After`` header.
        ``share=0`` switches it off. Scripted faults take precedence.
        """
        spec = share_spec(share, status=status, seed=seed, retry_after=retry_after, method=method)
        self._apply(FaultSpec(fail_share=spec))

    # --- scripted faults --------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 503,
        retry_after: float | None = None,
        session_id: str | None = None,
        method: Method = "PUT",
    ) -> None:
        """The next ``n`` requests are answered ``status`` without being stored."""
        batch = fail_batch(
            n, status=status, retry_after=retry_after, session_id=session_id, method=method
        )
        self._apply(FaultSpec(queue=(batch,)))

    def rate_limit_next(
        self,
        n: int = 1,
        *,
        retry_after: float = 1.0,
        session_id: str | None = None,
        method: Method = "PUT",
    ) -> None:
        """The next ``n`` requests get 429 with ``Retry-After: <retry_after>``.

        Whole seconds are sent as an integer (``"2"``); fractions as a
        decimal (``"0.01"``) so that tests can stay fast.
        """
        self.fail_next(n, status=429, retry_after=retry_after, session_id=session_id, method=method)

    def drop_after_commit_next(self, n: int = 1, *, session_id: str | None = None) -> None:
        """The next ``n`` PUTs are handled normally (stored if valid), then the
        TCP connection is closed without a single response byte: the
        "lost response" case, where the client cannot know the entry is stored."""
        self._apply(FaultSpec(queue=(drop_after_commit_batch(n, session_id=session_id),)))

    def error_after_commit_next(
        self, n: int = 1, *, status: int = 500, session_id: str | None = None
    ) -> None:
        """The next ``n`` PUTs are handled normally (stored if valid), then
        answered ``status`` (default 500) as if the server failed."""
        batch = error_after_commit_batch(n, status=status, session_id=session_id)
        self._apply(FaultSpec(queue=(batch,)))

    def conflict_without_head_next(self, n: int = 1, *, session_id: str | None = None) -> None:
        """The next ``n`` PUTs get 409 without ``x-last-uuid`` (an older server)
        and nothing is stored; the chain is unchanged."""
        self._apply(FaultSpec(queue=(conflict_without_head_batch(n, session_id=session_id),)))

    def foreign_write_next(self, n: int = 1, *, session_id: str | None = None) -> None:
        """Before each of the next ``n`` PUTs is handled, a foreign writer
        appends an entry (a fresh uuid, chained to the head) to that PUT's
        session, so the client's Last-Uuid is stale and it gets a 409 naming
        the new head."""
        self._apply(FaultSpec(queue=(foreign_write_batch(n, session_id=session_id),)))

    def script(
        self,
        steps: Iterable[ScriptStep],
        *,
        session_id: str | None = None,
        method: Method = "PUT",
    ) -> None:
        """Queue one scripted fault per step, consumed one request each.

        ``script([503, 503, None])``: two 503s, then one request handled
        normally. See :data:`ScriptStep` for the step forms.
        """
        batches = script_batches(steps, session_id=session_id, method=method)
        self._apply(FaultSpec(queue=batches))

    # --- bookkeeping ------------------------------------------------------

    def pending(self) -> int:
        """How many scripted faults are still waiting to be consumed."""
        with self._lock:
            return len(self._steps)

    def reset(self) -> None:
        """Switch every fault off and drop all scripted ones."""
        self._apply(FaultSpec(reset=True))

    def snapshot(self) -> dict[str, Any]:
        """The current switches as JSON-able data (``GET /_admin/faults``)."""
        with self._lock:
            share = None if self._share is None else self._share.spec
            return {
                "latency": self._latency,
                "fail_share": None
                if share is None
                else {"share": share.share, "status": share.status, "method": share.method},
                "omit_conflict_head": self.omit_conflict_head,
                "endless_teleport_cursor": self.endless_teleport_cursor,
                "pending": [
                    {"fault": s.decision.name, "session_id": s.session_id, "method": s.method}
                    for s in self._steps
                ],
            }

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Apply a JSON spec, all or nothing (the admin endpoint and ``--faults``).

        Keys, applied in this order: ``reset`` (bool), ``latency`` (seconds),
        ``fail_share`` (kwargs of :meth:`fail_share`, or null to switch off),
        ``omit_conflict_head`` (bool), ``endless_teleport_cursor`` (bool), then
        any of ``fail_next``, ``rate_limit_next``, ``drop_after_commit_next``,
        ``error_after_commit_next``, ``conflict_without_head_next``,
        ``foreign_write_next`` (kwargs objects) and ``script`` (a list of
        steps, or kwargs of :meth:`script`). A bad spec raises ValueError and
        changes nothing.
        """
        self._apply(parse_spec(spec))

    def _apply(self, spec: FaultSpec) -> None:
        """Make every change of an already checked spec, under one lock."""
        share = spec.fail_share
        with self._lock:
            if spec.reset:
                self._steps.clear()
                self._share = None
                self._latency = 0.0
                self.omit_conflict_head = False
                self.endless_teleport_cursor = False
            if spec.latency is not None:
                self._latency = spec.latency
            if share is not None:
                self._share = _Share(share, random.Random(share.seed)) if share.share > 0 else None
            if spec.omit_conflict_head is not None:
                self.omit_conflict_head = spec.omit_conflict_head
            if spec.endless_teleport_cursor is not None:
                self.endless_teleport_cursor = spec.endless_teleport_cursor
            for batch in spec.queue:
                self._steps.extend(repeat(batch.fault, batch.count))
            self._update_quiet()

    def _update_quiet(self) -> None:  # under the lock
        self.quiet = not self._steps and self._share is None and self._latency == 0.0

    def decide(self, method: str, session_id: str) -> FaultDecision:
        """Consume and return the fault for one validated data request."""
        with self._lock:
            for i, step in enumerate(self._steps):
                if step.method == method and step.session_id in (None, session_id):
                    del self._steps[i]
                    self._update_quiet()
                    return step.decision
            share = self._share
            if share is not None and share.spec.method == method:
                spec = share.spec
                if share.rng.random() < spec.share:
                    return FaultDecision(
                        name=f"share_{spec.status}",
                        reply_status=spec.status,
                        retry_after=spec.retry_after,
                    )
        return _NO_FAULT
