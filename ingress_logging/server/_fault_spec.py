"""Fault switches as plain data: checked here, applied by the injector in one step.

Both doors build the same values: :class:`FaultInjector`'s methods call the
builders below with their arguments, and the admin endpoint / ``--faults``
parse a JSON spec into one :class:`FaultSpec` (:func:`parse_spec`). So both
refuse the same bad values with the same ValueError messages, and a spec is
fully checked before the injector changes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "MAX_COUNT",
    "Batch",
    "FaultDecision",
    "FaultSpec",
    "Method",
    "QueuedFault",
    "ScriptStep",
    "ShareSpec",
    "check_seconds",
    "conflict_without_head_batch",
    "drop_after_commit_batch",
    "error_after_commit_batch",
    "fail_batch",
    "foreign_write_batch",
    "parse_spec",
    "script_batches",
    "share_spec",
]

Method = Literal["PUT", "GET"]
AfterCommit = Literal["drop", "error"]

#: A step of :meth:`FaultInjector.script`: an HTTP status to reply with
#: (nothing stored), ``None``/``"ok"`` (handle normally), ``"drop"``,
#: ``"error_after_commit"``, ``"conflict_without_head"``, ``"foreign_write"``,
#: or a mapping ``{"status": 429, "retry_after": 0.01}``.
ScriptStep = int | str | None | Mapping[str, Any]

_STEP_NAMES = ("ok", "drop", "error_after_commit", "conflict_without_head", "foreign_write")

#: Most scripted faults one call may queue (each is one object in memory).
MAX_COUNT = 100_000


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


@dataclass(frozen=True, slots=True)
class QueuedFault:
    """A scripted fault, consumed by the first request of ``method`` for
    ``session_id`` (any session when None)."""

    decision: FaultDecision
    session_id: str | None
    method: Method


@dataclass(frozen=True, slots=True)
class Batch:
    """``count`` copies of one scripted fault, queued one after the other."""

    fault: QueuedFault
    count: int


@dataclass(frozen=True, slots=True)
class ShareSpec:
    """The standing random failure: ``share`` 0 switches it off."""

    share: float
    status: int
    retry_after: float | None
    method: Method
    seed: int | str | None


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Every change one ``configure`` makes, in the order it is applied.

    ``None`` leaves a standing switch as it is; ``queue`` is appended to the
    scripted faults.
    """

    reset: bool = False
    latency: float | None = None
    fail_share: ShareSpec | None = None
    omit_conflict_head: bool | None = None
    endless_teleport_cursor: bool | None = None
    queue: tuple[Batch, ...] = ()


# --- checks -----------------------------------------------------------------


def check_count(n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_COUNT:
        raise ValueError(f"n must be an int in 0..{MAX_COUNT}, not {n!r}")
    return n


def check_status(status: object, *, low: int = 400) -> int:
    if not isinstance(status, int) or isinstance(status, bool) or not low <= status <= 599:
        raise ValueError(f"status must be an int in {low}..599, not {status!r}")
    return status


def check_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise ValueError(f"{what} must be a number of seconds in 0..3600, not {value!r}")
    return float(value)


def _optional_seconds(value: object, what: str) -> float | None:
    return None if value is None else check_seconds(value, what)


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


def _flag(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


# --- builders: one per switch, shared by the methods and the JSON spec --------


def share_spec(
    share: object, *, status: object, seed: object, retry_after: object, method: object
) -> ShareSpec:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ValueError(f"share must be a number in 0..1, not {share!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
        raise ValueError(f"seed must be an int, a string or null, not {seed!r}")
    return ShareSpec(
        float(share),
        check_status(status),
        _optional_seconds(retry_after, "retry_after"),
        _method(method),
        seed,
    )


def _batch(n: object, decision: FaultDecision, session_id: object, method: object) -> Batch:
    return Batch(QueuedFault(decision, _session(session_id), _method(method)), check_count(n))


def fail_batch(
    n: object, *, status: object, retry_after: object, session_id: object, method: object
) -> Batch:
    decision = FaultDecision(
        name=f"status_{check_status(status)}",
        reply_status=check_status(status),
        retry_after=_optional_seconds(retry_after, "retry_after"),
    )
    return _batch(n, decision, session_id, method)


def drop_after_commit_batch(n: object, *, session_id: object) -> Batch:
    decision = FaultDecision(name="drop_after_commit", after_commit="drop")
    return _batch(n, decision, session_id, "PUT")


def error_after_commit_batch(n: object, *, status: object, session_id: object) -> Batch:
    decision = FaultDecision(
        name="error_after_commit",
        after_commit="error",
        after_commit_status=check_status(status, low=500),
    )
    return _batch(n, decision, session_id, "PUT")


def conflict_without_head_batch(n: object, *, session_id: object) -> Batch:
    decision = FaultDecision(name="conflict_without_head", reply_status=409)
    return _batch(n, decision, session_id, "PUT")


def foreign_write_batch(n: object, *, session_id: object) -> Batch:
    decision = FaultDecision(name="foreign_write", foreign_write=True)
    return _batch(n, decision, session_id, "PUT")


def _step_decision(step: object) -> FaultDecision:
    """The fault one :data:`ScriptStep` stands for; ValueError if it is none."""
    if step is None or step == "ok":
        return FaultDecision(name="ok")
    if isinstance(step, Mapping):
        unknown = set(step) - {"status", "retry_after"}
        if unknown:
            raise ValueError(f"unknown script step keys: {sorted(unknown)}")
        status = check_status(step.get("status"))
        return FaultDecision(
            name=f"status_{status}",
            reply_status=status,
            retry_after=_optional_seconds(step.get("retry_after"), "retry_after"),
        )
    if isinstance(step, int) and not isinstance(step, bool):
        return FaultDecision(name=f"status_{check_status(step)}", reply_status=step)
    if step == "drop":
        return FaultDecision(name="drop_after_commit", after_commit="drop")
    if step == "error_after_commit":
        return FaultDecision(name="error_after_commit", after_commit="error")
    if step == "conflict_without_head":
        return FaultDecision(name="conflict_without_head", reply_status=409)
    if step == "foreign_write":
        return FaultDecision(name="foreign_write", foreign_write=True)
    raise ValueError(f"unknown script step {step!r}; use a status, a mapping or {_STEP_NAMES}")


def script_batches(steps: object, *, session_id: object, method: object) -> tuple[Batch, ...]:
    if not isinstance(steps, Iterable) or isinstance(steps, str | bytes | Mapping):
        raise ValueError(f"script steps must be a list, not {steps!r}")
    decisions = [_step_decision(step) for step in steps]
    sid, m = _session(session_id), _method(method)
    return tuple(Batch(QueuedFault(d, sid, m), 1) for d in decisions)


# --- the JSON spec -------------------------------------------------------------


class _Args:
    """The arguments object of one switch in a JSON spec, checked against the
    names that switch takes."""

    def __init__(
        self, key: str, value: object, names: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> None:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key} must be a JSON object of arguments")
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{key} got unknown arguments {unknown}; it takes {list(names)}")
        missing = [name for name in required if name not in value]
        if missing:
            raise ValueError(f"{key} needs the arguments {missing}")
        self._key = key
        self._names = names
        self._value: Mapping[object, object] = value

    def get(self, name: str, default: object = None) -> object:
        assert name in self._names, (self._key, name)
        return self._value.get(name, default)


_FAIL_ARGS = ("n", "status", "retry_after", "session_id", "method")
_RATE_LIMIT_ARGS = ("n", "retry_after", "session_id", "method")
_SESSION_ARGS = ("n", "session_id")


def _queue(spec: Mapping[str, object]) -> tuple[Batch, ...]:
    """The scripted faults of a spec, in the order :meth:`configure` documents."""
    queue: list[Batch] = []
    if "fail_next" in spec:
        a = _Args("fail_next", spec["fail_next"], _FAIL_ARGS)
        queue.append(
            fail_batch(
                a.get("n", 1),
                status=a.get("status", 503),
                retry_after=a.get("retry_after"),
                session_id=a.get("session_id"),
                method=a.get("method", "PUT"),
            )
        )
    if "rate_limit_next" in spec:
        a = _Args("rate_limit_next", spec["rate_limit_next"], _RATE_LIMIT_ARGS)
        queue.append(
            fail_batch(
                a.get("n", 1),
                status=429,
                retry_after=a.get("retry_after", 1.0),
                session_id=a.get("session_id"),
                method=a.get("method", "PUT"),
            )
        )
    if "drop_after_commit_next" in spec:
        a = _Args("drop_after_commit_next", spec["drop_after_commit_next"], _SESSION_ARGS)
        queue.append(drop_after_commit_batch(a.get("n", 1), session_id=a.get("session_id")))
    if "error_after_commit_next" in spec:
        a = _Args(
            "error_after_commit_next", spec["error_after_commit_next"], (*_SESSION_ARGS, "status")
        )
        queue.append(
            error_after_commit_batch(
                a.get("n", 1), status=a.get("status", 500), session_id=a.get("session_id")
            )
        )
    if "conflict_without_head_next" in spec:
        a = _Args("conflict_without_head_next", spec["conflict_without_head_next"], _SESSION_ARGS)
        queue.append(conflict_without_head_batch(a.get("n", 1), session_id=a.get("session_id")))
    if "foreign_write_next" in spec:
        a = _Args("foreign_write_next", spec["foreign_write_next"], _SESSION_ARGS)
        queue.append(foreign_write_batch(a.get("n", 1), session_id=a.get("session_id")))
    if "script" in spec:
        script = spec["script"]
        if isinstance(script, list):
            queue.extend(script_batches(script, session_id=None, method="PUT"))
        else:
            a = _Args("script", script, ("steps", "session_id", "method"), required=("steps",))
            queue.extend(
                script_batches(
                    a.get("steps"), session_id=a.get("session_id"), method=a.get("method", "PUT")
                )
            )
    return tuple(queue)


_SPEC_KEYS = frozenset(
    {
        "reset",
        "latency",
        "fail_share",
        "omit_conflict_head",
        "endless_teleport_cursor",
        "fail_next",
        "rate_limit_next",
        "drop_after_commit_next",
        "error_after_commit_next",
        "conflict_without_head_next",
        "foreign_write_next",
        "script",
    }
)


def _share(value: object) -> ShareSpec:
    if value is None:  # null switches the share off
        return share_spec(0, status=503, seed=0, retry_after=None, method="PUT")
    a = _Args(
        "fail_share",
        value,
        ("share", "status", "seed", "retry_after", "method"),
        required=("share",),
    )
    return share_spec(
        a.get("share"),
        status=a.get("status", 503),
        seed=a.get("seed", 0),
        retry_after=a.get("retry_after"),
        method=a.get("method", "PUT"),
    )


def parse_spec(spec: object) -> FaultSpec:
    """Check a JSON fault spec (see :meth:`FaultInjector.configure`) and return
    it as plain data; ValueError names the first thing wrong."""
    if not isinstance(spec, Mapping):
        raise ValueError("fault spec must be a JSON object")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"unknown fault switches: {sorted(unknown)}")
    flags = {
        key: _flag(spec[key], key)
        for key in ("reset", "omit_conflict_head", "endless_teleport_cursor")
        if key in spec
    }
    return FaultSpec(
        reset=flags.get("reset", False),
        latency=check_seconds(spec["latency"], "latency") if "latency" in spec else None,
        fail_share=_share(spec["fail_share"]) if "fail_share" in spec else None,
        omit_conflict_head=flags.get("omit_conflict_head"),
        endless_teleport_cursor=flags.get("endless_teleport_cursor"),
        queue=_queue(spec),
    )
