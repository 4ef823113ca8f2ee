"""One engine per configuration per process, so front doors share one chain per session.

The ``IngressHandler`` and the OpenTelemetry exporter both call
``get_shared_engine(**config)``: with equal settings they get the same
engine, hence the same queue, the same ``parentUuid`` chain per session and
the same connections. Settings are compared by value where they are
hashable (strings, numbers, ``RetryPolicy``) and by identity otherwise
(plugin managers, hosts, callables). A closed engine is replaced; an engine
whose last holding front door closed is retired (``release_shared_engine``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ._engine import DeliveryEngine
from ._threads import THREAD_PREFIX

__all__ = ["get_shared_engine", "release_shared_engine"]

_lock = threading.Lock()
_engines: dict[tuple[tuple[str, object], ...], DeliveryEngine] = {}
#: Front doors that hold each engine and will release it (``release_shared_engine``).
_holders: dict[int, int] = {}
#: Engines also used by callers that never release them: closed at exit only.
_pinned: set[int] = set()


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


def get_shared_engine(*, hold: bool = False, **config: Any) -> DeliveryEngine:
    """The process's engine for this configuration (created on first use).

    ``hold=True``: the caller will call ``release_shared_engine`` when done
    (the logging handler's ``close()``); the last holder to release closes
    the engine. Callers that do not hold it (the OpenTelemetry exporters)
    keep it open until the process ends.
    """
    key = tuple(sorted((name, _key_part(value)) for name, value in config.items()))
    with _lock:
        engine = _engines.get(key)
        if engine is None or engine.closed:
            engine = _engines[key] = DeliveryEngine(**config)
            _holders[id(engine)] = 0
        if hold:
            _holders[id(engine)] += 1
        else:
            _pinned.add(id(engine))
        return engine


def release_shared_engine(engine: DeliveryEngine) -> None:
    """A holder is done with ``engine``; after the last one it is retired.

    Retiring runs on a short-lived thread: the engine delivers what it holds
    (up to its ``close_timeout``), then closes - unless a new holder took it
    meanwhile (``dictConfig`` closes the old handlers before it builds the
    new ones with the same settings, and those must find the same engine,
    entries and chain).
    """
    with _lock:
        held = _holders.get(id(engine))
        if not held:
            return
        _holders[id(engine)] = held - 1
        if held > 1 or id(engine) in _pinned:
            return
    thread = threading.Thread(
        target=_retire, args=(engine,), name=f"{THREAD_PREFIX}.retire", daemon=True
    )
    try:
        thread.start()
    except RuntimeError:  # interpreter shutting down: the exit hook closes it
        return


def _retire(engine: DeliveryEngine) -> None:
    engine.flush(engine.close_timeout)
    with _lock:
        if _holders.get(id(engine)):
            return  # taken again meanwhile
        _holders.pop(id(engine), None)
        for key, known in list(_engines.items()):
            if known is engine:
                del _engines[key]
    engine.close(engine.close_timeout)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
