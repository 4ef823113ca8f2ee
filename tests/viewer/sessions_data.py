"""Sessions for the viewer tests, generated from the shapes of agent transcripts.

The shapes are those of ../shared/data/ (user and assistant messages with
content blocks, tool_use and tool_result, thinking, a side chain, a
compaction boundary and its summary, summaries and snapshots without a uuid)
plus what this library's front doors write: a handler log entry with a
traceback, OpenTelemetry log and span entries, and a gap marker. Text is
made up; ids are derived from the session id.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ingress_logging.delivery._session import gap_entry
from ingress_logging.entries import record_to_entry


def _ts(i: int) -> str:
    return f"2026-03-04T05:{(i // 60) % 60:02d}:{i % 60:02d}.000Z"


_TRACEBACK = """Traceback (most recent call last):
  File "/srv/billing/worker.py", line 40, in charge
    provider.charge(invoice)
ValueError: disk quota exceeded for /var/data"""


def _log_entry(session_id: str) -> dict[str, Any]:
    """A handler log entry with a traceback (fixed paths: the docs screenshot shows it)."""
    record = logging.LogRecord(
        "billing.worker", logging.ERROR, "/srv/billing/worker.py", 42, "charge %s failed",
        ("inv-17",), None, func="charge",
    )  # fmt: skip
    record.exc_text = _TRACEBACK
    return record_to_entry(record, session_id)


def conversation(session_id: str) -> list[dict[str, Any]]:
    """One of each kind of entry the session page renders, chained by parentUuid."""
    common = {"isSidechain": False, "userType": "external", "cwd": "/work/app", "version": "2.1.0"}
    # ids derived from the session id: unique per session, the same on every run
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{session_id}/{k}")) for k in range(16)]
    tool_id = f"toolu_{uuid.uuid5(uuid.NAMESPACE_URL, session_id).hex[:20]}"
    entries: list[dict[str, Any]] = [
        {
            "type": "file-history-snapshot",
            "messageId": ids[15],
            "snapshot": {"messageId": ids[15], "trackedFileBackups": {}, "timestamp": _ts(0)},
            "isSnapshotUpdate": False,
        },
        {
            **common,
            "parentUuid": None,
            "sessionId": session_id,
            "type": "user",
            "uuid": ids[0],
            "timestamp": _ts(1),
            "message": {"role": "user", "content": "Find where the invoice total is rounded."},
        },
        {
            **common,
            "parentUuid": ids[0],
            "sessionId": session_id,
            "type": "assistant",
            "uuid": ids[1],
            "timestamp": _ts(2),
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": "model-x",
                "content": [
                    {"type": "thinking", "thinking": "The rounding probably lives in totals.py."},
                    {"type": "text", "text": "I'll search the code for the rounding call."},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Grep",
                        "input": {"pattern": "round\\(", "path": "src/billing"},
                    },
                ],
                "stop_reason": "tool_use",
            },
        },
        {
            **common,
            "parentUuid": ids[1],
            "sessionId": session_id,
            "type": "user",
            "uuid": ids[2],
            "timestamp": _ts(3),
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "is_error": False,
                        "content": [
                            {"type": "text", "text": "src/billing/totals.py:88: round(x, 2)"}
                        ],
                    }
                ],
            },
        },
        {
            **common,
            "parentUuid": None,
            "isSidechain": True,
            "sessionId": session_id,
            "type": "assistant",
            "uuid": ids[3],
            "timestamp": _ts(4),
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "Sub-agent: reading totals.py"}],
            },
        },
        {
            **common,
            "parentUuid": ids[2],
            "sessionId": session_id,
            "type": "system",
            "subtype": "compact_boundary",
            "content": "Conversation compacted",
            "level": "info",
            "uuid": ids[4],
            "timestamp": _ts(5),
            "logicalParentUuid": ids[3],
            "compactMetadata": {"trigger": "auto", "preTokens": 150000},
        },
        {
            **common,
            "parentUuid": ids[4],
            "sessionId": session_id,
            "type": "user",
            "uuid": ids[5],
            "timestamp": _ts(6),
            "isCompactSummary": True,
            "message": {
                "role": "user",
                "content": [{"type": "text", "text": "Summary so far: rounding found."}],
            },
        },
        {"type": "summary", "summary": "Invoice rounding investigation", "leafUuid": ids[5]},
    ]
    log = _log_entry(session_id)
    log.update(uuid=ids[6], parentUuid=ids[5], timestamp=_ts(7))
    entries.append(log)
    entries.append(
        {
            "type": "otel_log",
            "timestamp": _ts(8),
            "uuid": ids[7],
            "parentUuid": ids[6],
            "sessionId": session_id,
            "severity": {"text": "WARN", "number": 13},
            "body": "retrying payment provider",
            "attributes": {"attempt": 2},
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "scope": {"name": "payments", "version": "1.0"},
            "resource": {},
        }
    )
    entries.append(
        {
            "type": "otel_span",
            "timestamp": _ts(9),
            "uuid": ids[8],
            "parentUuid": ids[7],
            "sessionId": session_id,
            "name": "POST /charge",
            "kind": "CLIENT",
            "status": {"code": "ERROR", "description": "timeout"},
            "start_time": _ts(8),
            "end_time": _ts(9),
            "duration_ms": 1234.5,
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "b7ad6b7169203331",
            "parent_span_id": "00f067aa0ba902b7",
            "attributes": {},
            "events": [],
            "links": [],
            "scope": {"name": "payments"},
            "resource": {},
        }
    )
    gap = gap_entry(session_id, ids[8], 3, {"queue_full": 3})
    gap.update(uuid=ids[9], timestamp=_ts(10))
    entries.append(gap)
    entries.append(
        {
            **common,
            "parentUuid": "not-the-entry-before",
            "sessionId": session_id,
            "type": "assistant",
            "uuid": ids[10],
            "timestamp": _ts(11),
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "Out-of-chain reply."}],
            },
        }
    )
    entries.append(
        {
            **common, "parentUuid": ids[10], "sessionId": session_id, "type": "user",
            "uuid": ids[11], "timestamp": _ts(12),
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_id, "is_error": True,
                     "content": "permission denied: src/billing/secret.py"}
                ],
            },
        }
    )  # fmt: skip
    return entries


def numbered(session_id: str, n: int, *, start: int = 0) -> list[dict[str, Any]]:
    """``n`` user/assistant text entries ``message <i>``, chained."""
    out: list[dict[str, Any]] = []
    parent: str | None = None
    for i in range(start, start + n):
        me = str(uuid.uuid4())
        role = "user" if i % 2 == 0 else "assistant"
        out.append(
            {
                "type": role,
                "uuid": me,
                "parentUuid": parent,
                "sessionId": session_id,
                "timestamp": _ts(i),
                "isSidechain": False,
                "message": {"role": role, "content": [{"type": "text", "text": f"message {i}"}]},
            }
        )
        parent = me
    return out


def store_all(server: Any, session_id: str, entries: list[dict[str, Any]]) -> None:
    """Append entries straight into the server's store, in order (no HTTP: for volume)."""
    import json

    for entry in entries:
        result = server.store.append(session_id, entry, json.dumps(entry), None, check=False)
        assert result.stored
