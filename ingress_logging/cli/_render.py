"""One readable line per entry: time, type, a one-line summary.

Transcript entries come in many shapes (agent messages with content blocks,
summaries, snapshots, log records from ``IngressHandler``, spans from the
OpenTelemetry exporter); the summary picks the most telling field of each
and never spans more than one line.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from .._entry_filter import entry_kind

__all__ = ["entry_kind", "entry_time", "render_line", "summarise"]

SUMMARY_WIDTH: Final = 100


def _clip(text: str, width: int = SUMMARY_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def entry_time(entry: dict[str, Any]) -> str:
    """``YYYY-MM-DD HH:MM:SS`` from the entry's timestamp, or blanks."""
    ts = entry.get("timestamp")
    if not isinstance(ts, str) or len(ts) < 19:
        return " " * 19
    return ts[:10] + " " + ts[11:19]


def _blocks(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind == "tool_use":
            parts.append(f"[tool_use {block.get('name', '?')}]")
        elif kind == "tool_result":
            inner = _blocks(block.get("content"))
            parts.append(f"[tool_result] {inner}".rstrip())
        elif kind == "thinking":
            parts.append("[thinking]")
        elif isinstance(kind, str):
            parts.append(f"[{kind}]")
    return " ".join(parts)


def _front_door(entry: dict[str, Any]) -> str | None:
    """Entries written by this library's own front doors (handler, OTel exporters)."""
    kind = entry.get("type")
    if kind == "system" and entry.get("subtype") == "log":
        level = entry.get("level")
        logger = entry.get("logger")
        head = " ".join(str(x) for x in (level, f"{logger}:" if logger else None) if x)
        return f"{head} {entry.get('content', '')}".strip()
    if kind == "otel_log":
        severity = entry.get("severity")
        text = severity.get("text") if isinstance(severity, dict) else None
        body = entry.get("body")
        shown = body if isinstance(body, str) else orjson.dumps(body).decode()
        return f"{text} {shown}" if text else shown
    if kind == "otel_span":
        status = entry.get("status")
        code = status.get("code") if isinstance(status, dict) else None
        duration = entry.get("duration_ms")
        took = f" {duration:.1f} ms" if isinstance(duration, int | float) else ""
        return f"span {entry.get('name', '?')}{took}" + (f" {code}" if code else "")
    return None


def summarise(entry: dict[str, Any]) -> str:
    """The one line that best says what the entry is."""
    own = _front_door(entry)
    if own is not None:
        return _clip(own)
    message = entry.get("message")
    if isinstance(message, dict):
        text = _blocks(message.get("content"))
        if text:
            return _clip(text)
    elif isinstance(message, str):
        prefix = f"{entry['level']} " if isinstance(entry.get("level"), str) else ""
        logger = entry.get("logger") or entry.get("logger_name")
        where = f"{logger}: " if isinstance(logger, str) else ""
        return _clip(prefix + where + message)
    for key in ("summary", "content", "body", "name", "customTitle", "tag"):
        value = entry.get(key)
        if isinstance(value, str) and value:
            return _clip(value)
    if "messageId" in entry:
        return _clip(f"snapshot of message {entry['messageId']}")
    if "count" in entry and "reason" in entry:
        return _clip(f"{entry['count']} entries missing ({entry['reason']})")
    return ""


def render_line(entry: dict[str, Any]) -> str:
    """``time  kind  summary`` for one entry."""
    return f"{entry_time(entry)}  {entry_kind(entry):<24} {summarise(entry)}".rstrip()
