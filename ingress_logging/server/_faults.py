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
from typing import Any, Literal

__all__ = ["FaultDecision", "FaultInjector", "ScriptStep"]

Method = Literal["PUT", "GET"]
AfterCommit = Literal["drop", "error"]

#: A step of :meth:`FaultInjector.script`: an HTTP status to reply with
#: (nothing stored), ``None``/``"ok"`` (handle normally), ``"drop"``,
#: ``"error_after_commit"``, ``"conflict_without_head"``, ``"foreign_write"``,
#: or a mapping ``{"status": 429, "retry_after": 0.01}``.
ScriptStep = int | str | None | Mapping[str, Any]

_STEP_NAMES = ("ok", "drop", "error_after_commit", "conflict_without_head", "foreign_write")


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What the server does to one request.

    ``reply_status``: answer with this status *instead of* handling the request
    (nothing is stored); 409 here carries no ``x-last-uuid``.
    ``foreign_write``: append a foreign entry to the session first, then handle.
    ``after_commit``: handle (and commit) normally, then ``"drop"`` the TCP
    connection without a reply, or reply ``after_commit_status`` (``"error"``).
    ``name`` is what :class:`RequestRecord` shows as ``fault``.
    """

    name: str | None = None
    reply_status: int | None = None
    retry_after: float | None = None
    foreign_write: bool = False
    after_commit: AfterCommit | None = None
    after_commit_status: int = 500


_NO_FAULT = FaultDecision()


@dataclass(slots=True)
class _Step:
    decision: FaultDecision
    session_id: str | None
    method: Method


@dataclass(slots=True)
class _Share:
    share: float
    status: int
    retry_after: float | None
    method: Method
    rng: random.Random = field(repr=False)


def _count(n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, not {n!r}")
    return n


def _status(status: object, *, low: int = 400) -> int:
    if not isinstance(status, int) or isinstance(status, bool) or not low <= status <= 599:
        raise ValueError(f"status must be an int in {low}..599, not {status!r}")
    return status


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise ValueError(f"{what} must be a number of seconds in 0..3600, not {value!r}")
    return float(value)


def _optional_seconds(value: object, what: str) -> float | None:
    return None if value is None else _seconds(value, what)


def _method(method: object) -> Method:
    if method == "PUT":
        return "PUT"
    if method == "GET":
        return "GET"
    raise ValueError(f"method must be 'PUT' or 'GET', not {method!r}")


def _session(session_id: object) -> str | None:
    if session_id is not None and not isinstance(session_id, str):
        raise ValueError(f"session_id must be a string or null, not {session_id!r}")
    return session_id


class FaultInjector:
    """Runtime fault switches of one server (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[_Step] = []
        self._share: _Share | None = None
        self._latency = 0.0
        self.omit_conflict_head = False
        """When True, every genuine 409 (chain conflict or duplicate uuid) is
        sent without ``x-last-uuid``, like an older server; nothing else changes."""
        self.endless_teleport_cursor = False
        """When True, teleport-events pages always carry a ``next_cursor``: after
        the last real event the pages come back empty, forever (page-cap tests)."""

    # --- standing switches ------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds every data request waits before it is handled (0 = off)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = _seconds(seconds, "latency")

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
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ValueError(f"share must be a number in 0..1, not {share!r}")
        checked = _Share(
            float(share),
            _status(status),
            _optional_seconds(retry_after, "retry_after"),
            _method(method),
            random.Random(seed),
        )
        with self._lock:
            self._share = checked if share > 0 else None

    # --- scripted faults --------------------------------------------------

    def _push(
        self, n: int, decision: FaultDecision, session_id: str | None, method: Method
    ) -> None:
        step = _Step(decision, _session(session_id), _method(method))
        with self._lock:
            self._steps.extend(_Step(step.decision, step.session_id, step.method) for _ in range(n))

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
        decision = FaultDecision(
            name=f"status_{_status(status)}",
            reply_status=status,
            retry_after=_optional_seconds(retry_after, "retry_after"),
        )
        self._push(_count(n), decision, session_id, method)

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
        decision = FaultDecision(name="drop_after_commit", after_commit="drop")
        self._push(_count(n), decision, session_id, "PUT")

    def error_after_commit_next(
        self, n: int = 1, *, status: int = 500, session_id: str | None = None
    ) -> None:
        """The next ``n`` PUTs are handled normally (stored if valid), then
        answered ``status`` (default 500) as if the server failed."""
        decision = FaultDecision(
            name="error_after_commit",
            after_commit="error",
            after_commit_status=_status(status, low=500),
        )
        self._push(_count(n), decision, session_id, "PUT")

    def conflict_without_head_next(self, n: int = 1, *, session_id: str | None = None) -> None:
        """The next ``n`` PUTs get 409 without ``x-last-uuid`` (an older server)
        and nothing is stored; the chain is unchanged."""
        decision = FaultDecision(name="conflict_without_head", reply_status=409)
        self._push(_count(n), decision, session_id, "PUT")

    def foreign_write_next(self, n: int = 1, *, session_id: str | None = None) -> None:
        """Before each of the next ``n`` PUTs is handled, a foreign writer
        appends an entry (a fresh uuid, chained to the head) to that PUT's
        session, so the client's Last-Uuid is stale and it gets a 409 naming
        the new head."""
        decision = FaultDecision(name="foreign_write", foreign_write=True)
        self._push(_count(n), decision, session_id, "PUT")

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
        decisions = [self._step_decision(step) for step in steps]
        _session(session_id)
        m = _method(method)
        with self._lock:
            self._steps.extend(_Step(d, session_id, m) for d in decisions)

    @staticmethod
    def _step_decision(step: ScriptStep) -> FaultDecision:
        if step is None or step == "ok":
            return FaultDecision(name="ok")
        if isinstance(step, Mapping):
            unknown = set(step) - {"status", "retry_after"}
            if unknown:
                raise ValueError(f"unknown script step keys: {sorted(unknown)}")
            status = _status(step.get("status"))
            return FaultDecision(
                name=f"status_{status}",
                reply_status=status,
                retry_after=_optional_seconds(step.get("retry_after"), "retry_after"),
            )
        if isinstance(step, int) and not isinstance(step, bool):
            return FaultDecision(name=f"status_{_status(step)}", reply_status=step)
        if step == "drop":
            return FaultDecision(name="drop_after_commit", after_commit="drop")
        if step == "error_after_commit":
            return FaultDecision(name="error_after_commit", after_commit="error")
        if step == "conflict_without_head":
            return FaultDecision(name="conflict_without_head", reply_status=409)
        if step == "foreign_write":
            return FaultDecision(name="foreign_write", foreign_write=True)
        raise ValueError(f"unknown script step {step!r}; use a status, a mapping or {_STEP_NAMES}")

    # --- bookkeeping ------------------------------------------------------

    def pending(self) -> int:
        """How many scripted faults are still waiting to be consumed."""
        with self._lock:
            return len(self._steps)

    def reset(self) -> None:
        """Switch every fault off and drop all scripted ones."""
        with self._lock:
            self._steps.clear()
            self._share = None
            self._latency = 0.0
            self.omit_conflict_head = False
            self.endless_teleport_cursor = False

    def snapshot(self) -> dict[str, Any]:
        """The current switches as JSON-able data (``GET /_admin/faults``)."""
        with self._lock:
            share = self._share
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
        if not isinstance(spec, Mapping):
            raise ValueError("fault spec must be a JSON object")
        unknown = set(spec) - set(_SPEC_KEYS)
        if unknown:
            raise ValueError(f"unknown fault switches: {sorted(unknown)}")
        _apply_spec(FaultInjector(), spec)  # dry run: raises before anything changes
        _apply_spec(self, spec)

    def decide(self, method: str, session_id: str) -> FaultDecision:
        """Consume and return the fault for one validated data request."""
        with self._lock:
            for i, step in enumerate(self._steps):
                if step.method == method and step.session_id in (None, session_id):
                    del self._steps[i]
                    return step.decision
            share = self._share
            if share is not None and share.method == method and share.rng.random() < share.share:
                return FaultDecision(
                    name=f"share_{share.status}",
                    reply_status=share.status,
                    retry_after=share.retry_after,
                )
        return _NO_FAULT


_COUNTED = (
    "fail_next",
    "rate_limit_next",
    "drop_after_commit_next",
    "error_after_commit_next",
    "conflict_without_head_next",
    "foreign_write_next",
)
_SPEC_KEYS = (
    "reset",
    "latency",
    "fail_share",
    "omit_conflict_head",
    "endless_teleport_cursor",
    *_COUNTED,
    "script",
)


def _kwargs(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a JSON object of arguments")
    return dict(value)


def _flag(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _apply_spec(target: FaultInjector, spec: Mapping[str, Any]) -> None:
    try:
        if "reset" in spec and _flag(spec["reset"], "reset"):
            target.reset()
        if "latency" in spec:
            target.latency = spec["latency"]
        if "fail_share" in spec:
            if spec["fail_share"] is None:
                target.fail_share(0)
            else:
                target.fail_share(**_kwargs(spec["fail_share"], "fail_share"))
        if "omit_conflict_head" in spec:
            target.omit_conflict_head = _flag(spec["omit_conflict_head"], "omit_conflict_head")
        if "endless_teleport_cursor" in spec:
            target.endless_teleport_cursor = _flag(
                spec["endless_teleport_cursor"], "endless_teleport_cursor"
            )
        for key in _COUNTED:
            if key in spec:
                getattr(target, key)(**_kwargs(spec[key], key))
        if "script" in spec:
            script = spec["script"]
            if isinstance(script, list):
                target.script(script)
            else:
                target.script(**_kwargs(script, "script"))
    except TypeError as exc:  # unexpected keyword arguments
        raise ValueError(f"bad fault spec: {exc}") from None
