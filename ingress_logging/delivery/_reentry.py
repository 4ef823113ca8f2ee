"""Logging that re-enters the engine on the same thread: deferred, never locked.

A signal handler that logs runs on the main thread between two bytecodes,
possibly while that thread is inside ``submit`` with the scheduler's lock
held; a ``__del__`` that logs runs wherever the garbage collector happens to
run, allocations inside ``submit`` included. Taking the lock again deadlocks
(a ``Lock``) or sees state half-updated (an ``RLock``). So every public
engine call runs inside ``guard()``: the outermost call on a thread does the
work; a call nested in it takes no lock at all - ``submit`` puts its
arguments on this thread's list (``defer``) and the outermost call submits
them on its way out, after its own entry, so order on the thread is kept.

The list holds at most ``MAX_DEFERRED`` calls per thread (a signal handler
logging in a loop); beyond it calls are refused and counted as drops with
reason ``reentrant`` when the list is drained.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final

__all__ = ["MAX_DEFERRED", "THREAD_STATE", "after_fork", "defer", "drain", "guard"]

MAX_DEFERRED: Final = 1000

Deferred = tuple[Callable[..., object], tuple[object, ...]]


class _State(threading.local):
    def __init__(self) -> None:
        self.depth = 0
        self.draining = False
        self.deferred: list[Deferred] = []
        self.overflow: dict[Callable[[int], object], int] = {}


_state = _State()
#: The per-thread state, for ``submit``'s inlined form of ``guard()`` (it runs
#: once per record, and a ``with`` block costs two Python-level calls): nested
#: when ``depth`` is set, ``defer``; else set ``depth = 1``, do the work, and in
#: ``finally`` set it back to 0 and call ``drain``.
THREAD_STATE: Final = _state


class _Guard:
    """``with guard() as outer``: ``outer`` is False inside another engine call."""

    __slots__ = ()

    def __enter__(self) -> bool:
        state = _state
        state.depth += 1
        return state.depth == 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = _state
        state.depth -= 1
        if state.depth == 0:
            drain(state)


_GUARD: Final = _Guard()


def guard() -> _Guard:
    return _GUARD


def defer(call: Callable[..., object], *args: object, refuse: Callable[[int], object]) -> bool:
    """Run ``call(*args)`` when the outermost engine call on this thread returns.

    True when kept; False (and ``refuse(n)`` later) beyond ``MAX_DEFERRED``.
    """
    state = _state
    if len(state.deferred) < MAX_DEFERRED:
        state.deferred.append((call, args))
        return True
    state.overflow[refuse] = state.overflow.get(refuse, 0) + 1
    return False


def drain(state: _State) -> None:
    """Run what nested calls deferred (the outermost call, on its way out)."""
    if state.draining or not (state.deferred or state.overflow):
        return
    state.draining = True  # the calls below are outermost calls: no drain of their own
    try:
        while state.deferred or state.overflow:
            if state.deferred:
                call, args = state.deferred.pop(0)
                call(*args)
            else:
                refuse, count = state.overflow.popitem()
                refuse(count)
    finally:
        state.draining = False


def after_fork() -> None:
    """A forked child starts outside any engine call, with nothing deferred."""
    _state.depth = 0
    _state.draining = False
    _state.deferred = []
    _state.overflow = {}
