"""A ``logging.LogRecord`` becomes a transcript entry, in two halves.

:class:`RecordCapture` is the caller's half: it reads what can change once
``logger.info(...)`` returns (the message formatted from possibly mutable
``args``, the exception's traceback text, the active OpenTelemetry span)
and keeps a reference to the record for the rest. Calling it (the
worker's half) builds the entry: timestamp, source location, ``extra``
fields made JSON-safe, truncation, flags. :func:`record_to_entry` runs both
halves at once.

The entry (documented in docs/handler.md)::

    {"uuid", "sessionId", "timestamp": "2026-01-02T03:04:05.678Z",
     "type": "system", "subtype": "log", "level": "info", "levelno": 20,
     "logger", "content": <message>, "source": {pathname, lineno, funcName, module},
     "thread", "threadName", "process", "processName", ["taskName"],
     ["exception"], ["stack"], ["extra": {...}], ["trace_id", "span_id"],
     ["truncated": {path: original length}], ["serializationIssues": [...]]}

``type: "system"`` with ``level`` and ``content`` is how agent transcripts
already carry notices (see PROTOCOL.md "Objects"), so a transcript reader
shows log entries without knowing about this library. ``parentUuid`` is not
set here: the delivery engine assigns it in per-session submission order.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

from ._serialize import DEFAULT_LIMITS, Limits, Sanitizer, safe_repr

__all__ = [
    "ENTRY_OVERHEAD",
    "ENTRY_SUBTYPE",
    "ENTRY_TYPE",
    "STANDARD_ATTRS",
    "RecordCapture",
    "record_to_entry",
]

ENTRY_TYPE: Final = "system"
ENTRY_SUBTYPE: Final = "log"
#: Bytes charged per entry on top of its text, before it is serialised: the
#: envelope every entry gets (uuid, parentUuid, sessionId, timestamp, type,
#: level, logger, source location, thread/process, scope) is roughly this much.
#: The front doors' size hints and the engine's estimate both use it.
ENTRY_OVERHEAD: Final = 512

#: LogRecord attributes that are not ``extra`` fields. ``message`` and
#: ``asctime`` are set by formatters, ``taskName`` by Python 3.12+, and
#: ``session_id`` is consumed as the record's session.
STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))
) | {"message", "asctime", "taskName", "session_id"}


def _span_ids() -> tuple[int, int] | None:
    """(trace_id, span_id) of the active OpenTelemetry span, or None."""
    try:
        context = otel_trace.get_current_span().get_span_context()
        if context.is_valid:
            return context.trace_id, context.span_id
    except Exception:  # a broken tracer provider must not break logging
        pass
    return None


def _span_follows_contextvars() -> bool:
    """True when OpenTelemetry keeps the current span in a ``contextvars`` variable
    (its default): then a copy of the caller's context carries the span."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    return isinstance(runtime, ContextVarsRuntimeContext)


_SPAN_IN_CONTEXTVARS: Final = _span_follows_contextvars()
#: ``RecordCapture.span`` until the builder reads the span itself.
_ON_BUILD: Final = (-1, -1)


def _exception_text(record: logging.LogRecord, formatter: logging.Formatter | None) -> str | None:
    if record.exc_text:  # another handler's formatter already rendered it
        return str(record.exc_text)
    if not record.exc_info:
        return None
    try:
        if formatter is not None:
            return formatter.formatException(record.exc_info)
        return "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    except Exception:
        return f"<exception could not be formatted: {safe_repr(record.exc_info[1])}>"


class RecordCapture:
    """What must be read from a record on the caller's thread; call it to build the entry.

    Formatting the message here is a correctness requirement, not a
    preference: ``args`` may be mutable (``log.info("%s", some_list)``) and the
    application may change them the moment the logging call returns. The
    stdlib's ``QueueHandler`` formats on the caller for the same reason.
    Everything else (timestamps, ``extra`` sanitising, uuid) waits for the
    worker.

    The active OpenTelemetry span is read here too, unless
    ``span_on_build=True``: then it is read when the capture is called, which
    must happen inside a copy of the caller's context (the delivery engine
    calls builders so: ``contextvars.copy_context().run``). OpenTelemetry keeps
    the span in a context variable and a copy holds the same span object, so
    the ids are the same and the caller does not pay for reading them. With an
    OpenTelemetry runtime context that is not ``contextvars``-based the span is
    read here regardless.
    """

    __slots__ = (
        "cut",
        "exc_text",
        "limits",
        "message",
        "message_failed",
        "record",
        "session_id",
        "span",
    )

    def __init__(
        self,
        record: logging.LogRecord,
        session_id: str | None = None,
        *,
        formatter: logging.Formatter | None = None,
        limits: Limits = DEFAULT_LIMITS,
        span_on_build: bool = False,
    ) -> None:
        self.session_id = session_id
        self.limits = limits
        self.message_failed = False
        try:
            message = record.getMessage() if formatter is None else formatter.format(record)
        except Exception:  # bad %-args, or a __str__ that raises
            self.message_failed = True
            message = (
                f"<unformattable message: msg={safe_repr(record.msg)}, "
                f"args={safe_repr(record.args)}>"
            )
        # Cut to the limit here, on the caller's thread: a 50 MB message must
        # not be held (or charged against the queue's byte cap) whole, only to
        # be cut on the worker. ``cut`` keeps the original lengths for the flag.
        self.cut: dict[str, int] | None = None
        limit = limits.max_message_length
        if len(message) > limit:
            self.cut = {"content": len(message)}
            message = message[:limit]
        self.message = message
        has_exception = record.exc_info or record.exc_text
        exc_text = _exception_text(record, formatter) if has_exception else None
        if exc_text is not None and len(exc_text) > limit:
            self.cut = {**(self.cut or {}), "exception": len(exc_text)}
            exc_text = exc_text[:limit]
        self.exc_text = exc_text
        self.span = _ON_BUILD if span_on_build and _SPAN_IN_CONTEXTVARS else _span_ids()
        # The record itself is kept, not a copy of its attributes: the engine
        # holds it anyway (for ``prepare_entry``), and every object kept per
        # queued entry costs garbage-collector time on the caller's thread
        # while a backlog drains (measured: a copied ``__dict__`` per record
        # made a 20,000-record burst ~1.5 us/record slower on the caller).
        # The worker snapshots ``__dict__`` atomically; what a later handler's
        # formatter adds (``message``, ``asctime``, ``exc_text``) is not extra.
        self.record = record

    def __call__(self) -> dict[str, Any]:
        """Build the entry (runs on the delivery worker)."""
        return build_entry(self)


def _timestamp(created: Any, msecs: Any) -> str:
    try:
        seconds = float(created)
        millis = min(int(msecs), 999)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    except Exception:
        now = time.time()
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def build_entry(capture: RecordCapture) -> dict[str, Any]:
    """The worker's half: a complete, JSON-safe entry from a capture."""
    attrs: Mapping[str, Any] = dict(list(capture.record.__dict__.items()))  # atomic snapshot
    limits = capture.limits
    s = Sanitizer(limits)
    levelno = attrs.get("levelno")
    # From levelno, not record.levelname: colouring formatters rewrite
    # levelname in place (ANSI codes), possibly after this record was queued.
    levelname = logging.getLevelName(levelno) if type(levelno) is int else attrs.get("levelname")
    entry: dict[str, Any] = {"uuid": str(uuid.uuid4())}
    if capture.session_id is not None:
        entry["sessionId"] = capture.session_id
    entry["timestamp"] = _timestamp(attrs.get("created"), attrs.get("msecs", 0))
    entry["type"] = ENTRY_TYPE
    entry["subtype"] = ENTRY_SUBTYPE
    level = levelname.lower() if isinstance(levelname, str) else levelname
    entry["level"] = s.value(level, "level")
    entry["levelno"] = s.value(levelno, "levelno")
    entry["logger"] = s.value(attrs.get("name"), "logger")
    entry["content"] = s.string(capture.message, "content", limits.max_message_length)
    if capture.message_failed:
        s.flag("content", "format_error")
    entry["source"] = s.value(
        {
            "pathname": attrs.get("pathname"),
            "lineno": attrs.get("lineno"),
            "funcName": attrs.get("funcName"),
            "module": attrs.get("module"),
        },
        "source",
    )
    for key in ("thread", "threadName", "process", "processName"):
        entry[key] = s.value(attrs.get(key), key)
    task_name = attrs.get("taskName")
    if task_name is not None:
        entry["taskName"] = s.value(task_name, "taskName")
    if capture.exc_text is not None:
        entry["exception"] = s.string(capture.exc_text, "exception", limits.max_message_length)
    stack = attrs.get("stack_info")
    if stack:
        entry["stack"] = s.string(str(stack), "stack", limits.max_message_length)
    extra = {key: value for key, value in attrs.items() if key not in STANDARD_ATTRS}
    if extra:
        entry["extra"] = s.value(extra, "extra")
    span = capture.span
    if span is _ON_BUILD:
        span = _span_ids()
    if span is not None:
        entry["trace_id"] = format(span[0], "032x")
        entry["span_id"] = format(span[1], "016x")
    if capture.cut:
        s.truncated.update(capture.cut)
    return s.annotate(entry)


def record_to_entry(
    record: logging.LogRecord,
    session_id: str | None = None,
    *,
    formatter: logging.Formatter | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """Turn a record into a transcript entry (JSON-safe; never raises).

    Args:
        record: the log record.
        session_id: written as ``sessionId`` when given (the engine sets it too).
        formatter: when given, ``content`` is ``formatter.format(record)``
            instead of ``record.getMessage()``.
        limits: string, list and nesting limits (see :class:`Limits`).

    Returns:
        The entry dict; see the module docstring for its keys.
    """
    return build_entry(RecordCapture(record, session_id, formatter=formatter, limits=limits))
