"""Which threads are the engine's: a thread-local mark, set once per thread.

Workers and the reporter enter here; front doors ask ``is_worker_thread()``
on every record so that nothing emitted on a delivery thread is shipped (it
would feed the engine its own traffic).
"""

from __future__ import annotations

import threading
from typing import Final

from opentelemetry import context as otel_context

__all__ = ["THREAD_PREFIX", "enter_engine_thread", "is_worker_thread"]

THREAD_PREFIX: Final = "ingress_logging.delivery"


class _Mark(threading.local):
    # A class default, so that asking on a thread that never set it finds the
    # attribute: ``getattr(local, name, default)`` raises and catches an
    # AttributeError inside, several times slower on this per-record path.
    worker = False


_local = _Mark()


def enter_engine_thread() -> None:
    """Mark this thread as the engine's and switch OpenTelemetry instrumentation off.

    The mark is a thread-local flag, so ``is_worker_thread()`` - asked by the
    front doors on every record - costs one attribute lookup, not a
    ``threading.current_thread()`` name comparison.

    With an httpx instrumentation and ``IngressSpanExporter`` active, every
    delivery request would create a span, exported and delivered by another
    request, without end. OpenTelemetry's own exporters run under this key
    (``BatchProcessor``); so do our threads. The context is attached for the
    thread's whole life and never detached: the thread owns it.
    """
    _local.worker = True
    otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))


def is_worker_thread() -> bool:
    """True on any thread of any delivery engine (workers and the reporter)."""
    return _local.worker
