"""Transcript entries as coding agents write them: the dicts, nothing else.

Pure functions: no engine, no clock of their own (the caller passes the
timestamp), no SDK. A ``Draft`` is what a message says (its ``type``, the API
``message`` object or a system event's fields); ``build_entry`` puts the
envelope around it (``uuid``, ``parentUuid``, ``sessionId``, ``timestamp``,
``isSidechain``), in the key order of the files agents write.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Draft", "EntryType", "build_entry", "timestamp"]

EntryType = Literal["user", "assistant", "system"]


@dataclass
class Draft:
    """One message before it is placed in a chain.

    ``message``: the API message object (``role``, ``content``, ...) of a
    ``user`` or ``assistant`` entry; None for a ``system`` event.
    ``fields``: more top-level keys (``subtype``, ``content``, ``level``,
    ``toolUseResult``, ...). ``uuid``: an id the message already has (the
    Claude Agent SDK's), kept so the same message is recognised everywhere.
    ``thread``: the sub-agent thread it belongs to (None: the main chain).
    """

    type: EntryType
    message: dict[str, Any] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    uuid: str | None = None
    thread: str | None = None


def timestamp(now: datetime.datetime | None = None) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as transcripts write it."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{now.microsecond // 1000:03d}Z"
    )


def build_entry(
    draft: Draft,
    *,
    uuid: str,
    parent_uuid: str | None,
    session_id: str,
    is_sidechain: bool,
    when: str,
    common: Mapping[str, Any],
) -> dict[str, Any]:
    """The entry for ``draft``: envelope first, then the message, as agents write it."""
    entry: dict[str, Any] = {
        "parentUuid": parent_uuid,
        "isSidechain": is_sidechain,
        **common,
        "sessionId": session_id,
        "type": draft.type,
    }
    if draft.message is not None:
        entry["message"] = draft.message
    entry.update(draft.fields)
    entry["uuid"] = uuid
    entry["timestamp"] = when
    return entry
