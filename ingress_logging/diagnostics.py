"""Diagnostics events: names, levels, and the sink contract.

The seed reports small, PII-free events (an event name plus numeric fields)
to a diagnostics log. Here every such event goes to a *sink*: a callable
``sink(level, event, data)``. The protocol core emits them; the plugin layer
fans them out to every ``ingress_diagnostic`` hook implementation.

``data`` carries numbers (and, rarely, short enum-like strings such as a drop
reason) - never entry content, tokens, session ids or anything about people.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Final, Literal

__all__ = [
    "DIAGNOSTICS_LOGGER_NAME",
    "EVENTS",
    "PLUGIN_PREPARE_ENTRY_FAILED",
    "DiagnosticData",
    "DiagnosticSink",
    "DropCounter",
    "Level",
    "flush_drop_counters",
    "logger_sink",
]

Level = Literal["debug", "info", "warn", "error"]
DiagnosticData = Mapping[str, int | float | str | bool | None]
DiagnosticSink = Callable[[Level, str, DiagnosticData], None]

#: Stdlib logger that receives diagnostics when no other sink is configured.
#: Its records are never shipped (see the recursion rule in handler.py).
DIAGNOSTICS_LOGGER_NAME: Final = "ingress_logging.diagnostics"

# --- the seed's events (names are a wire-level contract; do not rename) ---
SESSION_PERSIST_RECOVERED_FROM_409: Final = "session_persist_recovered_from_409"
SESSION_PERSIST_409_ADOPT_SERVER_UUID: Final = "session_persist_409_adopt_server_uuid"
SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION: Final = "session_persist_fail_concurrent_modification"
SESSION_PERSIST_FAIL_BAD_TOKEN: Final = "session_persist_fail_bad_token"
SESSION_PERSIST_FAIL_STATUS: Final = "session_persist_fail_status"  # {status, attempt}
SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED: Final = (
    "session_persist_error_retries_exhausted"  # {attempt}
)
SESSION_PERSIST_FAIL_JWT_NO_TOKEN: Final = "session_persist_fail_jwt_no_token"
SESSION_GET_FAIL_NO_TOKEN: Final = "session_get_fail_no_token"
SESSION_GET_FAIL_INVALID_RESPONSE: Final = "session_get_fail_invalid_response"
SESSION_GET_NO_LOGS_FOR_SESSION: Final = "session_get_no_logs_for_session"
SESSION_GET_FAIL_BAD_TOKEN: Final = "session_get_fail_bad_token"
SESSION_GET_FAIL_STATUS: Final = "session_get_fail_status"  # {status}
TELEPORT_EVENTS_FETCH_FAIL: Final = "teleport_events_fetch_fail"
TELEPORT_EVENTS_NOT_FOUND: Final = "teleport_events_not_found"
TELEPORT_EVENTS_BAD_TOKEN: Final = "teleport_events_bad_token"
TELEPORT_EVENTS_BAD_STATUS: Final = "teleport_events_bad_status"
TELEPORT_EVENTS_INVALID_SHAPE: Final = "teleport_events_invalid_shape"
TELEPORT_EVENTS_PAGE_CAP: Final = "teleport_events_page_cap"

# --- this library's own events ---
SESSION_PERSIST_DUPLICATE_ENTRY: Final = "session_persist_duplicate_entry"
SESSION_PERSIST_FAIL_PERMANENT: Final = "session_persist_fail_permanent"  # {status}
SESSION_PERSIST_RETRY_AFTER: Final = "session_persist_retry_after"  # {status, delay_ms}
DELIVERY_DROPPED: Final = "delivery_dropped"  # {count, reason}
DELIVERY_FAILED: Final = "delivery_failed"  # {count, reason}
DELIVERY_GAP_WRITTEN: Final = "delivery_gap_written"  # {count}
#: Losses whose session was forgotten before its gap entry was written.
DELIVERY_GAP_UNMARKED: Final = "delivery_gap_unmarked"  # {count}
#: A damaged spool database was moved aside and a fresh one started.
SPOOL_RESET: Final = "spool_reset"  # {path} (the file kept for inspection)
DIAGNOSTIC_SINK_FAILED: Final = "diagnostic_sink_failed"  # {count}
RETRY_BUDGET_EXHAUSTED: Final = "retry_budget_exhausted"
#: An ``ingress_prepare_entry`` implementation raised; the entry was dropped.
PLUGIN_PREPARE_ENTRY_FAILED: Final = "plugin_prepare_entry_failed"  # {plugin, count}
#: Pipelined appends met a path that does not keep order; one at a time from then on.
PIPELINE_REORDERED: Final = "pipeline_reordered"  # {origin_reorders}

SEED_EVENTS: Final = frozenset(
    {
        SESSION_PERSIST_RECOVERED_FROM_409,
        SESSION_PERSIST_409_ADOPT_SERVER_UUID,
        SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION,
        SESSION_PERSIST_FAIL_BAD_TOKEN,
        SESSION_PERSIST_FAIL_STATUS,
        SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED,
        SESSION_PERSIST_FAIL_JWT_NO_TOKEN,
        SESSION_GET_FAIL_NO_TOKEN,
        SESSION_GET_FAIL_INVALID_RESPONSE,
        SESSION_GET_NO_LOGS_FOR_SESSION,
        SESSION_GET_FAIL_BAD_TOKEN,
        SESSION_GET_FAIL_STATUS,
        TELEPORT_EVENTS_FETCH_FAIL,
        TELEPORT_EVENTS_NOT_FOUND,
        TELEPORT_EVENTS_BAD_TOKEN,
        TELEPORT_EVENTS_BAD_STATUS,
        TELEPORT_EVENTS_INVALID_SHAPE,
        TELEPORT_EVENTS_PAGE_CAP,
    }
)
EVENTS: Final = SEED_EVENTS | {
    SESSION_PERSIST_DUPLICATE_ENTRY,
    SESSION_PERSIST_FAIL_PERMANENT,
    SESSION_PERSIST_RETRY_AFTER,
    DELIVERY_DROPPED,
    DELIVERY_FAILED,
    DELIVERY_GAP_WRITTEN,
    DELIVERY_GAP_UNMARKED,
    SPOOL_RESET,
    DIAGNOSTIC_SINK_FAILED,
    RETRY_BUDGET_EXHAUSTED,
    PLUGIN_PREPARE_ENTRY_FAILED,
    PIPELINE_REORDERED,
}

_LEVELS: Final[Mapping[Level, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}

_diagnostics_logger = logging.getLogger(DIAGNOSTICS_LOGGER_NAME)


def logger_sink(level: Level, event: str, data: DiagnosticData) -> None:
    """Default sink: one stdlib log line per event, on a logger that is never shipped.

    The message is a sentence with the event's numbers (``the server answered
    503 (attempt 2)``); the event name rides along as the record's ``event``
    attribute, for filters and structured formatters. (The numbers are not
    kept twice: a record held by a capturing handler must stay small.)
    """
    logger = _diagnostics_logger
    levelno = _LEVELS.get(level, logging.INFO)
    if not logger.isEnabledFor(levelno):
        return
    from ._messages import describe

    logger.log(
        levelno,
        "ingress_logging: %s",
        describe(event, data),
        extra={"event": event},
    )


class DropCounter:
    """Items a front door refused before the engine, counted by reason.

    Every drop is counted; the sink hears of each reason at its 1st, 2nd,
    4th, 8th... drop, so a flood of refusals cannot flood the diagnostics.
    Each report's ``count`` is the drops since the previous report (as the
    engine's ``delivery_dropped`` events count), ``total`` the running total;
    ``flush()`` (called for every counter at interpreter exit) reports the
    rest. A sink that raises is ignored here: it must never break logging or
    export.
    """

    def __init__(self, sink: DiagnosticSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        _counters.add(self)

    def add(self, reason: str, count: int = 1) -> None:
        with self._lock:
            before = self._counts.get(reason, 0)
            total = self._counts[reason] = before + count
            if total.bit_length() <= before.bit_length():  # no power of two crossed
                return
            new = total - self._reported.get(reason, 0)
            self._reported[reason] = total
        self._report(reason, new, total)

    def flush(self) -> None:
        """Report every drop not reported yet."""
        with self._lock:
            pending = [
                (reason, total - self._reported.get(reason, 0), total)
                for reason, total in self._counts.items()
                if total > self._reported.get(reason, 0)
            ]
            self._reported.update((reason, total) for reason, _, total in pending)
        for reason, new, total in pending:
            self._report(reason, new, total)

    def _report(self, reason: str, new: int, total: int) -> None:
        with contextlib.suppress(Exception):
            self._sink("warn", DELIVERY_DROPPED, {"count": new, "reason": reason, "total": total})

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


_counters: weakref.WeakSet[DropCounter] = weakref.WeakSet()


def flush_drop_counters() -> None:
    """``flush()`` every live ``DropCounter`` (at exit, before the summary)."""
    for counter in list(_counters):
        counter.flush()
