"""One engine per configuration per process, so front doors share one chain per session.

The ``IngressHandler`` and the OpenTelemetry exporter both call
``get_shared_engine(**config)``: with equal settings they get the same
engine, hence the same queue, the same ``parentUuid`` chain per session and
the same connections. Settings are compared by value where they are
hashable (strings, numbers, ``RetryPolicy``) and by identity otherwise
(plugin managers, hosts, callables). A closed engine is replaced.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ._engine import DeliveryEngine

__all__ = ["get_shared_engine", "shared_engines"]

_lock = threading.Lock()
_engines: dict[tuple[tuple[str, object], ...], DeliveryEngine] = {}


def _key_part(value: object) -> object:
    if isinstance(value, list):
        # plugins=[obj, ...]: key by the items, which the key keeps alive. An
        # id() of the list would be reused once the caller drops the list,
        # handing another configuration this engine.
        value = tuple(value)
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    if isinstance(value, str | int | float | bool | tuple | frozenset) or value is None:
        return value
    if type(value).__eq__ is object.__eq__:
        return ("id", id(value))
    return value


def get_shared_engine(**config: Any) -> DeliveryEngine:
    """The process's engine for this configuration (created on first use)."""
    key = tuple(sorted((name, _key_part(value)) for name, value in config.items()))
    with _lock:
        engine = _engines.get(key)
        if engine is None or engine.closed:
            engine = _engines[key] = DeliveryEngine(**config)
        return engine


def shared_engines() -> list[DeliveryEngine]:
    """Every shared engine created in this process (tests and ``atexit`` use it)."""
    with _lock:
        return list(_engines.values())


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
