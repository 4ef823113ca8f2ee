"""Diagnostics off the hot paths: callers and workers enqueue, one thread reports.

Why a thread of its own: a diagnostics sink may log (the default one does,
to ``ingress_logging.diagnostics``), and logging can take the logging module's
lock. ``Handler.flush()`` runs under that lock during ``dictConfig()``, and
flush waits for the workers - so a worker must never call a sink itself.
Callers of ``submit`` must not pay for a sink either, and a million drops
must not become a million events: drops are coalesced per reason and
reported at most every ``interval`` seconds as one ``delivery_dropped``
event ``{count, reason}``.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable

from .. import diagnostics as ev
from ..diagnostics import DiagnosticData, Level
from ._threads import enter_engine_thread

__all__ = ["Reporter"]

Sink = Callable[[Level, str, DiagnosticData], None]


class Reporter:
    """Collects events from any thread; a daemon thread hands them to ``sink``."""

    def __init__(self, sink: Sink, *, name: str, interval: float = 0.25) -> None:
        self._sink = sink
        self._name = name
        self._interval = interval
        self._reinit()

    def _reinit(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._events: deque[tuple[Level, str, DiagnosticData]] = deque(maxlen=10_000)
        self._drops: dict[str, int] = {}
        self._unmarked = 0  # lost entries whose gap entry will never be written
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._busy = False
        self._beating = False  # reporting every ``interval`` (drops coalesce meanwhile)
        self.reported_drops = 0  # sum of ``count`` over delivery_dropped events sent

    def after_fork(self) -> None:
        """In a forked child: new lock, no thread, nothing inherited to report."""
        self._reinit()

    def drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            wake = not self._drops and not self._beating
            self._drops[reason] = self._drops.get(reason, 0) + count
            self._ensure_thread()
        if wake:
            self._wake.set()  # the first drop is reported at once, later ones coalesced

    def unmarked(self, count: int) -> None:
        """Losses of forgotten sessions: coalesced like drops."""
        with self._lock:
            wake = not self._unmarked and not self._beating
            self._unmarked += count
            self._ensure_thread()
        if wake:
            self._wake.set()

    def event(self, level: Level, event: str, data: DiagnosticData) -> None:
        with self._lock:
            self._events.append((level, event, data))
            self._ensure_thread()
        self._wake.set()

    def kick(self) -> None:
        """Report what is pending now rather than at the next interval."""
        self._wake.set()

    def drain(self, timeout: float) -> bool:
        """Kick and wait (bounded) until everything enqueued so far is reported."""
        self._wake.set()
        with self._idle:
            if self._thread is None:
                return not (self._events or self._drops or self._unmarked)
            return self._idle.wait_for(
                lambda: not (self._events or self._drops or self._unmarked or self._busy),
                timeout=timeout,
            )

    def stop(self, timeout: float) -> None:
        self.drain(timeout)
        with self._lock:
            self._stopping = True
        self._wake.set()

    def _ensure_thread(self) -> None:
        if self._thread is not None or self._stopping:
            return
        thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: nothing will be reported
            return
        self._thread = thread

    def _run(self) -> None:
        enter_engine_thread()  # sinks may make requests (an OTel metrics exporter)
        timeout: float | None = None
        while True:
            self._wake.wait(timeout)
            self._wake.clear()
            with self._lock:
                events = list(self._events)
                self._events.clear()
                drops, self._drops = self._drops, {}
                unmarked, self._unmarked = self._unmarked, 0
                stopping = self._stopping
                self._busy = True
            for level, name, data in events:
                self._emit(level, name, data)
            for reason, count in drops.items():
                self._emit("warn", ev.DELIVERY_DROPPED, {"count": count, "reason": reason})
            if unmarked:
                self._emit("warn", ev.DELIVERY_GAP_UNMARKED, {"count": unmarked})
            # Something was reported: keep a slow beat so a stream of drops is
            # coalesced; nothing was: sleep until woken (no idle wake-ups).
            timeout = self._interval if (events or drops or unmarked) else None
            with self._lock:
                self._beating = timeout is not None
                self.reported_drops += sum(drops.values())
                self._busy = False
                self._idle.notify_all()
            if stopping:
                return

    def _emit(self, level: Level, event: str, data: DiagnosticData) -> None:
        with contextlib.suppress(Exception):  # a sink must never stop the reports
            self._sink(level, event, data)
