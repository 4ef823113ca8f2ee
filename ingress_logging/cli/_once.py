"""One append attempt, for entries a retry could store twice.

An entry without a ``uuid`` (a summary, a snapshot) does not move the
session's chain head when it is stored, so after a lost reply a retry with
the same ``Last-Uuid`` is accepted again: a duplicate. Such an entry gets
one attempt here (a 409 that names a new head is not an attempt's failure:
the server refused it, so nothing is stored), and the caller reads the
session to learn whether it is stored before trying again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol import Done, Wait

if TYPE_CHECKING:
    from ..client import SessionIngressClient

__all__ = ["append_once", "has_uuid"]


def has_uuid(entry: dict[str, Any]) -> bool:
    uuid = entry.get("uuid")
    return isinstance(uuid, str) and bool(uuid)


def append_once(
    client: SessionIngressClient, session_id: str, entry: dict[str, Any], url: str
) -> bool:
    """True when stored; False when the attempt failed (stored or not: read to know)."""
    pending = client.begin_append(session_id, entry, url)
    action = pending.action
    while not isinstance(action, Done):
        if isinstance(action, Wait):
            return False
        action = client.advance(pending)
    return action.ok
