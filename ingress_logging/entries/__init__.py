"""Records to transcript entries: the ambient session, the entry shape, safe JSON.

Public API::

    session(session_id)            context manager / decorator (contextvar)
    current_session_id()           the ambient session id, or None
    record_to_entry(record, ...)   LogRecord -> JSON-safe entry dict
    RecordCapture(record, ...)     the caller-thread half; call it on the worker
    dumps_entry(entry)             orjson bytes; never raises
    dump_line(entry)               one JSONL line (line breakers escaped)
    Limits, DEFAULT_LIMITS         message/string/list/depth limits
"""

from __future__ import annotations

from ._context import SESSION_ID_VAR, current_session_id, session
from ._line import dump_line
from ._record import (
    ENTRY_OVERHEAD,
    ENTRY_SUBTYPE,
    ENTRY_TYPE,
    STANDARD_ATTRS,
    RecordCapture,
    record_to_entry,
)
from ._serialize import (
    DEFAULT_LIMITS,
    ISSUES_KEY,
    TRUNCATED_KEY,
    Limits,
    Sanitizer,
    dumps_entry,
    safe_repr,
)

__all__ = [
    "DEFAULT_LIMITS",
    "ENTRY_OVERHEAD",
    "ENTRY_SUBTYPE",
    "ENTRY_TYPE",
    "ISSUES_KEY",
    "SESSION_ID_VAR",
    "STANDARD_ATTRS",
    "TRUNCATED_KEY",
    "Limits",
    "RecordCapture",
    "Sanitizer",
    "current_session_id",
    "dump_line",
    "dumps_entry",
    "record_to_entry",
    "safe_repr",
    "session",
]
