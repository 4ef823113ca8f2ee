"""Every engine that is not closed gets closed when its process ends.

Open engines are held here (strongly: an engine dropped by its creator must
still deliver what it accepted - its workers only reference the pool) until
``close()``. At the end of the process ``close_all`` closes each one with its
``close_timeout``:

* the main interpreter: an ``atexit`` hook (registered at import, after
  ``logging``'s, so it runs before ``logging.shutdown``);
* ``multiprocessing`` children: they end with ``os._exit()`` and skip
  ``atexit``, so a ``multiprocessing.util.Finalize`` is registered too - and
  again in each child, which clears that registry when it starts.
"""

from __future__ import annotations

import atexit
import multiprocessing.util as mp_util
import os
import threading
from typing import Protocol

__all__ = ["close_all", "keep_alive", "release"]


class _Closable(Protocol):
    close_timeout: float

    def close(self, timeout: float | None = None) -> object: ...


_lock = threading.Lock()
_open: dict[int, _Closable] = {}


def keep_alive(engine: _Closable) -> None:
    with _lock:
        _open[id(engine)] = engine


def release(engine: _Closable) -> None:
    with _lock:
        _open.pop(id(engine), None)


def close_all() -> None:
    """Close every open engine (each within its own ``close_timeout``)."""
    with _lock:
        engines = list(_open.values())
    for engine in engines:
        try:
            engine.close(engine.close_timeout)
        except Exception:
            continue


class _Anchor:
    """A weak-referenceable owner for ``register_after_fork``."""


_anchor = _Anchor()


def _register_mp_finalizer(_: object = None) -> None:
    mp_util.Finalize(None, close_all, exitpriority=100)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


atexit.register(close_all)
_register_mp_finalizer()
mp_util.register_after_fork(_anchor, _register_mp_finalizer)
os.register_at_fork(after_in_child=_after_fork_in_child)
