"""record_to_entry / RecordCapture: the entry shape, limits, and what is read on the caller."""

from __future__ import annotations

import calendar
import contextvars
import logging
import re
import sys
import time
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from ingress_logging.entries import (
    ISSUES_KEY,
    STANDARD_ATTRS,
    TRUNCATED_KEY,
    Limits,
    RecordCapture,
    dumps_entry,
    record_to_entry,
)


def make_record(
    msg: object = "hello %s", args: Any = ("world",), **extra: Any
) -> logging.LogRecord:
    logger = logging.getLogger("tests.entries.app")
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 42, msg, args, None, func="fn", extra=extra or None
    )


def test_entry_shape() -> None:
    record = make_record(user="ada", count=3)
    entry = record_to_entry(record, "sess-1")
    assert uuid.UUID(entry["uuid"]).version == 4
    assert entry["sessionId"] == "sess-1"
    assert entry["type"] == "system"
    assert entry["subtype"] == "log"
    assert entry["content"] == "hello world"
    assert entry["level"] == "warning"
    assert entry["levelno"] == logging.WARNING
    assert entry["logger"] == "tests.entries.app"
    assert entry["source"] == {
        "pathname": __file__,
        "lineno": 42,
        "funcName": "fn",
        "module": "test_record",
    }
    assert entry["thread"] == record.thread
    assert entry["threadName"] == record.threadName
    assert entry["process"] == record.process
    assert entry["processName"] == record.processName
    assert entry["extra"] == {"user": "ada", "count": 3}
    assert "parentUuid" not in entry  # the engine's job
    assert ISSUES_KEY not in entry
    assert TRUNCATED_KEY not in entry
    assert "trace_id" not in entry


def test_timestamp_is_utc_iso_with_z_from_created() -> None:
    record = make_record()
    record.created = 1_700_000_000.25
    record.msecs = 250.0
    entry = record_to_entry(record)
    assert entry["timestamp"] == "2023-11-14T22:13:20.250Z"
    assert "sessionId" not in entry


def test_timestamp_now_by_default() -> None:
    entry = record_to_entry(make_record())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])
    stamp = time.strptime(entry["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
    # timegm reads the struct as UTC (mktime - timezone is an hour off under DST).
    assert abs(calendar.timegm(stamp) - time.time()) < 5


def test_exception_and_stack() -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        record = make_record()
        record.exc_info = sys.exc_info()
    record.stack_info = "Stack (most recent call last):\n  frame"
    entry = record_to_entry(record)
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: bad value")
    assert entry["stack"] == record.stack_info


def test_exception_whose_str_raises() -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    try:
        raise Nasty
    except Nasty:
        record = make_record(Nasty(), ())
        record.exc_info = sys.exc_info()
    entry = record_to_entry(record)
    assert "Nasty" in entry["exception"]
    assert entry["content"].startswith("<unformattable message:")
    assert {"path": "content", "reason": "format_error"} in entry[ISSUES_KEY]
    orjson.loads(dumps_entry(entry))


def test_bad_format_args_keep_the_rest() -> None:
    entry = record_to_entry(make_record("%d items", ("not a number",), user="kept"))
    assert entry["content"] == "<unformattable message: msg='%d items', args=('not a number',)>"
    assert entry["extra"] == {"user": "kept"}


def test_megabyte_message_is_truncated_and_marked() -> None:
    big = "x" * (1024 * 1024)
    entry = record_to_entry(make_record(big, ()))
    assert len(entry["content"]) == 64 * 1024
    assert entry[TRUNCATED_KEY] == {"content": 1024 * 1024}
    small = record_to_entry(make_record(big, ()), limits=Limits(max_message_length=10))
    assert small["content"] == "x" * 10


def test_args_are_formatted_at_capture_time() -> None:
    items = ["a"]
    capture = RecordCapture(make_record("items=%s", (items,)), "s")
    items.append("mutated after the call returned")
    assert capture()["content"] == "items=['a']"


def test_capture_renders_the_exception_on_the_caller() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        record = make_record()
        record.exc_info = sys.exc_info()
    capture = RecordCapture(record)
    assert capture.exc_text is not None
    assert capture.exc_text.endswith("KeyError: 'k'")
    record.exc_info = None  # what happens to the record later does not matter
    assert capture()["exception"] == capture.exc_text


def test_level_survives_a_colouring_formatter() -> None:
    record = make_record()
    capture = RecordCapture(record)
    record.levelname = "\x1b[33mWARNING\x1b[0m"  # what colouring formatters do in place
    assert capture()["level"] == "warning"


def test_attributes_a_later_formatter_adds_are_not_extras() -> None:
    record = make_record(user="ada")
    capture = RecordCapture(record)
    logging.Formatter("%(asctime)s %(message)s").format(record)  # another handler, later
    assert capture()["extra"] == {"user": "ada"}


def test_formatter_output_becomes_content() -> None:
    formatter = logging.Formatter("%(levelname)s|%(name)s|%(message)s")
    entry = record_to_entry(make_record(), formatter=formatter)
    assert entry["content"] == "WARNING|tests.entries.app|hello world"


def test_unserialisable_extras_are_flagged_entry_complete() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    record = make_record(obj=object(), cyc=cycle, raw=b"\x00", text="x\udcff", nul="a\x00b")
    entry = record_to_entry(record, "s")
    data = orjson.loads(dumps_entry(entry))
    assert data["content"] == "hello world"
    assert data["extra"]["nul"] == "a\x00b"
    reasons = {i["path"]: i["reason"] for i in data[ISSUES_KEY]}
    assert reasons == {
        "extra.obj": "unserializable",
        "extra.cyc.self": "cycle",
        "extra.raw": "bytes",
        "extra.text": "surrogates",
    }


def test_session_id_extra_is_not_an_extra_field() -> None:
    entry = record_to_entry(make_record(session_id="s", other=1))
    assert entry["extra"] == {"other": 1}


def test_formatter_attributes_are_not_extras() -> None:
    record = make_record()
    logging.Formatter("%(asctime)s %(message)s").format(record)
    assert "extra" not in record_to_entry(record)


def test_active_span_ids_are_added() -> None:
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("op") as span:
        capture = RecordCapture(make_record())
    ctx = span.get_span_context()
    entry = capture()
    assert entry["trace_id"] == format(ctx.trace_id, "032x")
    assert entry["span_id"] == format(ctx.span_id, "016x")
    assert len(entry["trace_id"]) == 32
    assert len(entry["span_id"]) == 16


def test_span_on_build_reads_the_span_in_the_context_the_capture_runs_in() -> None:
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("op") as span:
        capture = RecordCapture(make_record(), span_on_build=True)
        callers_context = contextvars.copy_context()
    # Called in a copy of the caller's context (as the engine's workers do): the ids.
    entry = callers_context.run(capture)
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert entry["span_id"] == format(span.get_span_context().span_id, "016x")
    # Read when called, not when captured: outside the span there is none.
    assert "trace_id" not in capture()


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.ERROR, logging.CRITICAL, 5])
def test_levels(level: int) -> None:
    record = make_record()
    record.levelno = level
    record.levelname = logging.getLevelName(level)
    entry = record_to_entry(record)
    assert entry["levelno"] == level
    assert entry["level"] == logging.getLevelName(level).lower()


@settings(max_examples=150, deadline=None)
@given(
    message=st.text(),
    extras=st.dictionaries(
        st.text(min_size=1).filter(lambda k: k not in STANDARD_ATTRS),
        st.one_of(st.text(), st.integers(), st.binary(), st.builds(object), st.none()),
        max_size=4,
    ),
)
def test_any_message_and_extras_make_a_complete_serialisable_entry(
    message: str, extras: dict[str, Any]
) -> None:
    record = make_record(message, ())
    for key, value in extras.items():
        record.__dict__[key] = value
    entry = record_to_entry(record, "prop")
    data = orjson.loads(dumps_entry(entry))
    assert data["sessionId"] == "prop"
    assert data["logger"] == "tests.entries.app"
    assert data["uuid"] == entry["uuid"]
    expected = message.encode("utf-8", "backslashreplace").decode("utf-8")
    assert data["content"] == expected
    assert set(data.get("extra", {})) == {
        k.encode("utf-8", "backslashreplace").decode("utf-8") for k in extras
    }
