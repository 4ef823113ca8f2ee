"""One readable line per entry: time, type, a one-line summary.

Transcript entries come in many shapes (agent messages with content blocks,
summaries, snapshots, log records from ``IngressHandler``, spans from the
OpenTelemetry exporter); the summary picks the most telling field of each
and never spans more than one line.
"""

from __future__ import annotations

from typing import Any, Final

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


def entry_kind(entry: dict[str, Any]) -> str:
    """``type`` plus ``/subtype`` when present (e.g. ``system/compact_boundary``)."""
    kind = str(entry.get("type", "?"))
    subtype = entry.get("subtype")
    return f"{kind}/{subtype}" if isinstance(subtype, str) else kind


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


def summarise(entry: dict[str, Any]) -> str:
    """The one line that best says what the entry is."""
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
