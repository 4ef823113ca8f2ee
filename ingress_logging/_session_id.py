"""Session id validation, shared by the client and the local server.

A session id becomes a URL path segment and a storage key, so it is checked
once, at the edge, against an allow-list: anything that could traverse a path
(``..``, ``/``, ``%2F``), split a header (CR/LF) or truncate a C string (NUL)
is refused before any request is built.

``validate_session_id`` returns a ``SessionId``: a ``str`` that passed the
check. Code that receives a ``SessionId`` may trust it without checking again
(mypy keeps a plain ``str`` from being passed where one is required). Ids that
passed are remembered (a bounded set), so the layers that must not trust a
plain ``str`` - the handler, the engine, the client, the plugin host - pay a
dict lookup for an id seen before, not the pattern match again.
"""

from __future__ import annotations

import re
from typing import NewType
from urllib.parse import quote

from .errors import InvalidSessionIdError

__all__ = ["MAX_SESSION_ID_LENGTH", "SessionId", "quote_session_id", "validate_session_id"]

#: A session id that passed ``validate_session_id`` (made only by it).
SessionId = NewType("SessionId", str)

#: Ids remembered as valid; the set is emptied when it reaches this size.
_KNOWN_LIMIT = 4096
_known: dict[str, SessionId] = {}

MAX_SESSION_ID_LENGTH = 256

# First character alphanumeric or underscore, so "." and ".." can never be ids.
_ALLOWED = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]*")


def validate_session_id(session_id: object) -> SessionId:
    """Return ``session_id`` unchanged (as a ``SessionId``) if it is safe, else raise
    InvalidSessionIdError."""
    if type(session_id) is str:
        known = _known.get(session_id)
        if known is not None:
            return known
    valid = _check(session_id)
    if len(_known) >= _KNOWN_LIMIT:
        _known.clear()
    _known[valid] = valid
    return valid


def _check(session_id: object) -> SessionId:
    if not isinstance(session_id, str):
        raise InvalidSessionIdError(f"session id must be a str, not {type(session_id).__name__}")
    if not session_id:
        raise InvalidSessionIdError("session id must not be empty")
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise InvalidSessionIdError(
            f"session id is {len(session_id)} characters long; the limit is {MAX_SESSION_ID_LENGTH}"
        )
    if _ALLOWED.fullmatch(session_id) is None:
        raise InvalidSessionIdError(
            f"session id {session_id[:64]!r} may only contain letters, digits and "
            "'_', '.', ':', '-', and must start with a letter, digit or '_'"
        )
    return SessionId(session_id)


def quote_session_id(session_id: str) -> str:
    """Validate and percent-encode a session id for use as one URL path segment."""
    return quote(validate_session_id(session_id), safe="")
