"""Diagnostics events in words: one sentence per event, with its numbers.

Event names are for machines (metrics, alerts, the seed's diagnostics file);
people read the sentence. ``describe(event, data)`` is the one place that
turns an event into that sentence, for the console logger, the command line
and the stderr notices alike. Data only ever carries numbers and short
enum-like strings (see ``diagnostics``), so nothing here can print a token or
entry content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from . import diagnostics as ev
from .diagnostics import DiagnosticData

__all__ = ["describe", "describe_reason", "entries"]


def entries(count: object, noun: str = "entry") -> str:
    """``1 entry`` / ``3 entries`` (``noun`` ending in y or not)."""
    n = count if isinstance(count, int) else 0
    if n == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {plural}"


#: Why entries were not delivered (the ``reason`` of drops and failures).
_REASONS: Final[Mapping[str, str]] = {
    "unauthorized": "the server rejected the token (401)",
    "no_token": "no token is configured",
    "permanent": "refused by the server",
    "conflict": "another writer kept changing the session (409)",
    "retries_exhausted": "every retry failed",
    "unserialisable": "not serialisable as JSON",
    "queue_full": "the queue was full",
    "evicted": "pushed out of the full queue by newer entries",
    "block_timeout": "the queue stayed full for block_timeout",
    "too_large": "larger than the queue's byte cap",
    "closed": "still queued when delivery stopped",
    "prepare_entry": "dropped by a plugin",
    "build_error": "building the entry raised",
    "no_session_id": "no session id (none given and no default)",
    "invalid_session_id": "invalid session id",
    "handler_error": "the logging handler failed",
    "exporter_shut_down": "the exporter was shut down",
    "exporter_error": "the exporter failed",
    "ignored_scope": "from this library's own instrumentation",
}


def describe_reason(reason: object) -> str:
    """A drop or failure reason in words (``error:X`` names the exception type)."""
    text = str(reason)
    if text.startswith("error:"):
        return f"{text[6:]} was raised"
    return _REASONS.get(text, text.replace("_", " "))


def _status(data: DiagnosticData) -> str:
    status = data.get("status")
    return f" ({status})" if status is not None else ""


def _attempt(data: DiagnosticData) -> str:
    attempt = data.get("attempt")
    return f" (attempt {attempt})" if attempt is not None else ""


def _fail_status(data: DiagnosticData) -> str:
    if data.get("status") is not None:
        return f"the server answered {data['status']}{_attempt(data)}"
    return f"no reply from the server{_attempt(data)}"


def _count_reason(verb: str) -> Callable[[DiagnosticData], str]:
    def sentence(data: DiagnosticData) -> str:
        return f"{entries(data.get('count'))} {verb}: {describe_reason(data.get('reason'))}"

    return sentence


_SENTENCES: Final[Mapping[str, Callable[[DiagnosticData], str]]] = {
    ev.SESSION_PERSIST_RECOVERED_FROM_409: lambda d: (
        "a conflict (409) showed the entry was already stored; not sent again"
    ),
    ev.SESSION_PERSIST_409_ADOPT_SERVER_UUID: lambda d: (
        "another writer moved the session on (409); continuing after the server's head"
    ),
    ev.SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION: lambda d: (
        "the append conflicted with another writer (409) and the head could not be found"
    ),
    ev.SESSION_PERSIST_FAIL_BAD_TOKEN: lambda d: "the server rejected the token (401)",
    ev.SESSION_PERSIST_FAIL_STATUS: _fail_status,
    ev.SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED: lambda d: (
        f"gave up on an entry after {d.get('attempt')} attempts"
    ),
    ev.SESSION_PERSIST_FAIL_JWT_NO_TOKEN: lambda d: (
        "no token is configured (set INGRESS_LOGGING_TOKEN or token=)"
    ),
    ev.SESSION_GET_FAIL_NO_TOKEN: lambda d: (
        "cannot read the session: no token is configured (set INGRESS_LOGGING_TOKEN or token=)"
    ),
    ev.SESSION_GET_FAIL_INVALID_RESPONSE: lambda d: "the server's reply to a read was not valid",
    ev.SESSION_GET_NO_LOGS_FOR_SESSION: lambda d: "the session does not exist (404)",
    ev.SESSION_GET_FAIL_BAD_TOKEN: lambda d: "the server rejected the token (401)",
    ev.SESSION_GET_FAIL_STATUS: lambda d: (
        "403: the organization does not match, or the token may not read this session"
        if d.get("status") == 403
        else f"the server answered {d['status']}"
        if d.get("status") is not None
        else "no reply from the server"
    ),
    ev.TELEPORT_EVENTS_FETCH_FAIL: lambda d: "fetching the session's events failed",
    ev.TELEPORT_EVENTS_NOT_FOUND: lambda d: "the session's events were not found (404)",
    ev.TELEPORT_EVENTS_BAD_TOKEN: lambda d: "the server rejected the OAuth token (401)",
    ev.TELEPORT_EVENTS_BAD_STATUS: lambda d: (
        "403: the organization does not match"
        if d.get("status") == 403
        else f"fetching the session's events: the server answered an error{_status(d)}"
    ),
    ev.TELEPORT_EVENTS_INVALID_SHAPE: lambda d: "the events reply did not have the expected shape",
    ev.TELEPORT_EVENTS_PAGE_CAP: lambda d: "stopped after the maximum number of event pages",
    ev.SESSION_PERSIST_DUPLICATE_ENTRY: lambda d: (
        "the server already held an entry with this uuid; not sent twice"
    ),
    ev.SESSION_PERSIST_FAIL_PERMANENT: lambda d: (
        f"the server refused the entry{_status(d)}; retrying cannot help"
    ),
    ev.SESSION_PERSIST_RETRY_AFTER: lambda d: (
        f"the server asked to wait{_status(d)}; retrying in {d.get('delay_ms')} ms"
    ),
    ev.DELIVERY_DROPPED: _count_reason("dropped"),
    ev.DELIVERY_FAILED: _count_reason("not delivered"),
    ev.DELIVERY_GAP_WRITTEN: lambda d: (
        f"wrote a gap entry in place of {entries(d.get('count'))} that were lost"
    ),
    ev.DIAGNOSTIC_SINK_FAILED: lambda d: f"{d.get('count')} diagnostics sink(s) raised",
    ev.RETRY_BUDGET_EXHAUSTED: lambda d: (
        "the retry budget is spent: failing entries are not retried until requests succeed again"
    ),
    "otel_exporter_shutdown_incomplete": lambda d: (
        f"the exporter shut down before delivery finished: {d.get('pending')} pending, "
        f"{d.get('failed')} failed, {d.get('dropped')} dropped"
    ),
    ev.PLUGIN_PREPARE_ENTRY_FAILED: lambda d: (
        f"the plugin {d.get('plugin')} failed on an entry, so the entry was dropped "
        "(never shipped unprepared)"
    ),
}


def describe(event: str, data: DiagnosticData) -> str:
    """One sentence for a diagnostics event (unknown events: name and fields)."""
    sentence = _SENTENCES.get(event)
    if sentence is not None:
        try:
            return sentence(data)
        except Exception:  # a field of an unexpected type: fall back to the raw form
            pass
    fields = ", ".join(f"{k}={v}" for k, v in data.items())
    return f"{event} ({fields})" if fields else event
