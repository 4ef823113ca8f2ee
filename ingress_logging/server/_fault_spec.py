"""Validation for fault switches: arguments, script steps and the JSON spec.

Shared by the Python API (:class:`FaultInjector` methods check their own
arguments) and the admin endpoint / ``--faults`` (``apply_spec``), so both
refuse the same bad values with the same ValueError messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._faults import FaultInjector

__all__ = [
    "MAX_COUNT",
    "SPEC_KEYS",
    "FaultDecision",
    "Method",
    "ScriptStep",
    "apply_spec",
    "check_count",
    "check_method",
    "check_optional_seconds",
    "check_seconds",
    "check_session",
    "check_status",
    "step_decision",
]

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


#: Most scripted faults one call may queue (each is one object in memory).
MAX_COUNT = 100_000


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


def check_optional_seconds(value: object, what: str) -> float | None:
    return None if value is None else check_seconds(value, what)


def check_method(method: object) -> Method:
    if method == "PUT":
        return "PUT"
    if method == "GET":
        return "GET"
    raise ValueError(f"method must be 'PUT' or 'GET', not {method!r}")


def check_session(session_id: object) -> str | None:
    if session_id is not None and not isinstance(session_id, str):
        raise ValueError(f"session_id must be a string or null, not {session_id!r}")
    return session_id


def step_decision(step: ScriptStep) -> FaultDecision:
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
            retry_after=check_optional_seconds(step.get("retry_after"), "retry_after"),
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


_COUNTED = (
    "fail_next",
    "rate_limit_next",
    "drop_after_commit_next",
    "error_after_commit_next",
    "conflict_without_head_next",
    "foreign_write_next",
)
SPEC_KEYS = (
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


def apply_spec(target: FaultInjector, spec: Mapping[str, Any]) -> None:
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
