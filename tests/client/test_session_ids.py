"""A session id is checked once, then trusted: a bounded set that holds only valid ids."""

from __future__ import annotations

import pytest

from ingress_logging import _session_id
from ingress_logging._session_id import validate_session_id
from ingress_logging.errors import InvalidSessionIdError


def test_a_valid_id_is_remembered_and_returned_unchanged() -> None:
    sid = "remembered-session:1"
    assert validate_session_id(sid) == sid
    assert _session_id._known.get(sid) == sid
    assert validate_session_id(sid) is _session_id._known[sid]


@pytest.mark.parametrize("bad", ["../up", "a/b", "", "x" * 300, "crlf\r\n", ".hidden"])
def test_an_invalid_id_is_refused_every_time_and_never_remembered(bad: str) -> None:
    for _ in range(2):
        with pytest.raises(InvalidSessionIdError):
            validate_session_id(bad)
    assert bad not in _session_id._known


def test_the_remembered_set_is_bounded() -> None:
    for i in range(_session_id._KNOWN_LIMIT + 10):
        validate_session_id(f"bounded-{i}")
    assert len(_session_id._known) <= _session_id._KNOWN_LIMIT
