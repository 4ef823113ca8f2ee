"""What a front door (the logging handler, the OpenTelemetry exporters) needs of the engine.

One Protocol, so both front doors type against the same contract and accept
any engine with this shape (a test double, or ``engine=`` of their own). It
lives outside ``delivery`` because importing that package loads httpx, and a
front door only does that once it builds its shared engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # importing delivery loads httpx: only for the type checker
    from .delivery import FlushResult

__all__ = ["EngineLike"]


class EngineLike(Protocol):
    """The part of ``delivery.DeliveryEngine`` every front door uses."""

    def submit(
        self,
        session_id: str,
        entry: dict[str, Any] | Callable[[], dict[str, Any]],
        *,
        record: object | None = None,
        size_hint: int | None = None,
    ) -> bool: ...

    def flush(self, timeout: float | None = None) -> FlushResult: ...
