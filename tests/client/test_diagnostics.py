"""PROTOCOL.md's diagnostics list: every seed event, its level and its numeric fields.

The fields are exactly the seed's: events the seed logs without data carry none
(a checker comparing ``data == {}`` must pass), the three that carry numbers
carry those numbers only.

Each row drives the client (both kinds) against the local server into the
situation that reports the event. The recorder in conftest already fails any
event whose data is not numeric.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ingress_logging import RetryPolicy, SessionExpiredError
from ingress_logging import diagnostics as ev


def entry() -> dict[str, Any]:
    return {"type": "user", "uuid": str(uuid.uuid4())}


def _append(**client_kwargs: Any) -> Callable[[Any, Any], None]:
    def run(make: Any, srv: Any) -> None:
        make(**client_kwargs).append_session_log("s", entry())

    return run


def _lost_reply(make: Any, srv: Any) -> None:
    srv.faults.drop_after_commit_next()
    make().append_session_log("s", entry())


def _foreign(make: Any, srv: Any) -> None:
    client = make()
    client.append_session_log("s", entry())
    srv.faults.foreign_write_next()
    client.append_session_log("s", entry())


def _conflict(make: Any, srv: Any) -> None:
    srv.faults.conflict_without_head_next()
    make().append_session_log("s", entry())


def _status(make: Any, srv: Any) -> None:
    srv.faults.fail_next(1, status=500)
    make().append_session_log("s", entry())


def _exhausted(make: Any, srv: Any) -> None:
    srv.faults.fail_next(2, status=500)
    make(retry_policy=RetryPolicy(max_attempts=2, base_delay=0.001)).append_session_log(
        "s", entry()
    )


def _read(status: int | None = None, **client_kwargs: Any) -> Callable[[Any, Any], None]:
    def run(make: Any, srv: Any) -> None:
        srv.append_foreign("s")
        if status is not None:
            srv.faults.fail_next(1, status=status, method="GET")
        with contextlib.suppress(SessionExpiredError):
            make(**client_kwargs).get_session_logs("s" if status else "nothing-here")

    return run


def _events(
    *, token: str | None = None, sid: str = "s", setup: Callable[[Any], None] | None = None
) -> Callable[[Any, Any], None]:
    def run(make: Any, srv: Any) -> None:
        srv.add_event("s", entry())
        if setup is not None:
            setup(srv)
        with contextlib.suppress(SessionExpiredError):
            make().get_teleport_events(sid, token or srv.oauth_token, srv.org_uuid)

    return run


def _set(srv: Any, **attrs: Any) -> None:
    for key, value in attrs.items():
        setattr(srv.faults, key, value)


def _stop(srv: Any) -> None:
    srv.stop()


ROWS: list[tuple[str, str, set[str], Callable[[Any, Any], None]]] = [
    (ev.SESSION_PERSIST_RECOVERED_FROM_409, "info", set(), _lost_reply),
    (ev.SESSION_PERSIST_409_ADOPT_SERVER_UUID, "info", set(), _foreign),
    (ev.SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION, "error", set(), _conflict),
    (ev.SESSION_PERSIST_FAIL_BAD_TOKEN, "error", set(), _append(token="wrong")),
    (ev.SESSION_PERSIST_FAIL_STATUS, "error", {"status", "attempt"}, _status),
    (ev.SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED, "error", {"attempt"}, _exhausted),
    (ev.SESSION_PERSIST_FAIL_JWT_NO_TOKEN, "error", set(), _append(token=None)),
    (ev.SESSION_GET_FAIL_NO_TOKEN, "error", set(), _read(token=None)),
    (ev.SESSION_GET_NO_LOGS_FOR_SESSION, "warn", set(), _read()),
    (ev.SESSION_GET_FAIL_BAD_TOKEN, "error", set(), _read(401, token="wrong")),
    (ev.SESSION_GET_FAIL_STATUS, "error", {"status"}, _read(500)),
    (ev.TELEPORT_EVENTS_FETCH_FAIL, "error", set(), _events(setup=_stop)),
    (ev.TELEPORT_EVENTS_NOT_FOUND, "warn", set(), _events(sid="unknown")),
    (ev.TELEPORT_EVENTS_BAD_TOKEN, "error", set(), _events(token="wrong")),
    (
        ev.TELEPORT_EVENTS_BAD_STATUS,
        "error",
        {"status"},
        _events(setup=lambda srv: srv.faults.fail_next(1, status=403, method="GET")),
    ),
    (
        ev.TELEPORT_EVENTS_PAGE_CAP,
        "warn",
        set(),
        _events(setup=lambda srv: _set(srv, endless_teleport_cursor=True)),
    ),
]


@pytest.mark.parametrize(("event", "level", "fields", "scenario"), ROWS, ids=[r[0] for r in ROWS])
def test_seed_event_is_reported(
    make_client, ingress_server, diagnostics, event, level, fields, scenario
):
    scenario(make_client, ingress_server)
    matching = [(lv, data) for lv, name, data in diagnostics.events if name == event]
    assert matching, diagnostics.names()
    assert all(lv == level for lv, _ in matching)
    assert set(matching[0][1]) == fields


def test_invalid_shape_events(make_client, scripted, diagnostics):
    client = make_client(base_api_url=scripted.base_url)
    scripted.push(200, b'{"loglines": {}}')
    assert client.get_session_logs("s", scripted.session_url("s")) is None
    scripted.push(200, b'{"data": "x"}')
    assert client.get_teleport_events("s", "tok", "org") is None
    assert diagnostics.names() == [
        ev.SESSION_GET_FAIL_INVALID_RESPONSE,
        ev.TELEPORT_EVENTS_INVALID_SHAPE,
    ]


def test_every_seed_event_has_a_row():
    covered = {row[0] for row in ROWS} | {
        ev.SESSION_GET_FAIL_INVALID_RESPONSE,
        ev.TELEPORT_EVENTS_INVALID_SHAPE,
    }
    assert covered == ev.SEED_EVENTS


def test_debug_logging_goes_to_ingress_logging_loggers(client, ingress_server, caplog):
    caplog.set_level(logging.DEBUG, logger="ingress_logging")
    ingress_server.faults.fail_next(1)
    assert client.append_session_log("s", entry())
    ours = {r.name for r in caplog.records if r.name.startswith("ingress_logging")}
    assert "ingress_logging.client" in ours
    assert "ingress_logging.protocol" in ours
