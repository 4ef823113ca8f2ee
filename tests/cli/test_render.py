"""One readable line per entry, for every shape the CLI meets."""

from __future__ import annotations

from ingress_logging.cli._render import render_line, summarise


def test_handler_log_entry_shows_level_logger_and_message() -> None:
    entry = {
        "type": "system",
        "subtype": "log",
        "level": "warning",
        "logger": "app.db",
        "content": "disk at 91%\nsecond line",
        "timestamp": "2026-01-02T03:04:05.678Z",
    }
    assert render_line(entry) == (
        "2026-01-02 03:04:05  system/log               warning app.db: disk at 91% second line"
    )


def test_otel_entries() -> None:
    log = {"type": "otel_log", "severity": {"text": "WARN", "number": 13}, "body": {"k": [1]}}
    span = {"type": "otel_span", "name": "GET /", "duration_ms": 12.345, "status": {"code": "OK"}}
    assert summarise(log) == 'WARN {"k":[1]}'
    assert summarise(span) == "span GET / 12.3 ms OK"


def test_gap_entry_says_what_is_missing() -> None:
    gap = {
        "type": "system",
        "subtype": "gap",
        "count": 3,
        "reason": "queue_full",
        "content": "3 log entries of this session were not delivered (queue_full)",
    }
    assert "3 log entries" in summarise(gap)


def test_long_text_is_clipped_to_one_line() -> None:
    entry = {"type": "user", "message": {"role": "user", "content": "word " * 100}}
    line = summarise(entry)
    assert len(line) == 100
    assert line.endswith("...")
    assert "\n" not in line


def test_unknown_shapes_do_not_crash() -> None:
    assert render_line({}) == " " * 19 + "  ?"
    assert summarise({"type": "custom-title", "customTitle": "My title"}) == "My title"
    assert summarise({"type": "user", "message": {"content": [{"type": "image"}, 3]}}) == "[image]"
