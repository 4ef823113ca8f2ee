"""The append state machine, row by row of PROTOCOL.md's append table.

These drive ``AppendExchange`` directly (it is sans-I/O); the same rows are
exercised over real sockets against the local server in tests/client.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingress_logging import diagnostics as ev
from ingress_logging.protocol import (
    AppendExchange,
    AppendOutcome,
    Done,
    Put,
    Refetch,
    RetryPolicy,
    Wait,
)

UUID = "11111111-1111-4111-8111-111111111111"
HEAD = "22222222-2222-4222-8222-222222222222"
OTHER = "33333333-3333-4333-8333-333333333333"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, level: str, event: str, data: Any) -> None:
        self.events.append((level, event, dict(data)))

    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]


def make(head: str | None = HEAD, uuid: str | None = UUID, **policy: Any):
    rec = Recorder()
    return AppendExchange(uuid, head, RetryPolicy(**policy), rec), rec


def test_no_token_fails_at_once_without_a_request() -> None:
    ex, rec = make()
    action = ex.start(has_token=False)
    assert action == Done(AppendOutcome.NO_TOKEN)
    assert not action.ok
    assert rec.names() == [ev.SESSION_PERSIST_FAIL_JWT_NO_TOKEN]


@pytest.mark.parametrize("head", [None, HEAD])
def test_first_put_carries_the_known_head(head: str | None) -> None:
    ex, _ = make(head=head)
    assert ex.start(has_token=True) == Put(head, 1)


@pytest.mark.parametrize("status", [200, 201])
def test_stored_advances_the_head(status: int) -> None:
    ex, rec = make()
    ex.start(has_token=True)
    action = ex.on_response(status)
    assert action == Done(AppendOutcome.STORED, status)
    assert action.ok
    assert ex.head == UUID
    assert rec.events == []


def test_stored_entry_without_uuid_keeps_the_head() -> None:
    ex, _ = make(uuid=None)
    ex.start(has_token=True)
    assert ex.on_response(200).ok
    assert ex.head == HEAD


def test_409_naming_this_entry_is_success_without_a_duplicate() -> None:
    ex, rec = make()
    ex.start(has_token=True)
    action = ex.on_response(409, x_last_uuid=UUID)
    assert action == Done(AppendOutcome.ALREADY_STORED, 409)
    assert action.ok
    assert ex.head == UUID
    assert rec.names() == [ev.SESSION_PERSIST_RECOVERED_FROM_409]


def test_409_naming_another_head_adopts_it_and_retries_at_once() -> None:
    ex, rec = make()
    ex.start(has_token=True)
    action = ex.on_response(409, x_last_uuid=OTHER)
    assert action == Put(OTHER, 1)  # a lost race is not a failed attempt
    assert ex.head == OTHER
    assert rec.names() == [ev.SESSION_PERSIST_409_ADOPT_SERVER_UUID]
    assert ex.on_response(200) == Done(AppendOutcome.STORED, 200)
    assert ex.head == UUID


def test_409_naming_the_head_just_sent_is_no_proof_the_session_is_read() -> None:
    """The server (or a proxy) named the head this request carried: whether the
    entry is stored only the session can say."""
    ex, rec = make(head=None)
    ex.start(has_token=True)
    assert ex.on_response(409, x_last_uuid=OTHER) == Put(OTHER, 1)
    assert ex.on_response(409, x_last_uuid=OTHER) == Refetch()
    # Not in the session: the same head again costs an attempt, never "delivered".
    assert ex.on_refetched([{"uuid": OTHER}]) == Put(OTHER, 2)
    assert ex.on_response(409, x_last_uuid=OTHER) == Refetch()
    action = ex.on_refetched([{"uuid": UUID}, {"uuid": OTHER}])
    assert action == Done(AppendOutcome.DUPLICATE, 409)
    assert rec.names()[-1] == ev.SESSION_PERSIST_DUPLICATE_ENTRY


def test_409_naming_the_head_sent_on_the_first_attempt_refetches() -> None:
    ex, _ = make(head=HEAD)
    ex.start(has_token=True)
    assert ex.on_response(409, x_last_uuid=HEAD) == Refetch()


def test_same_head_409s_end_after_the_attempts() -> None:
    ex, _ = make(head=HEAD, max_attempts=3)
    action = ex.start(has_token=True)
    requests = 0
    while not isinstance(action, Done):
        requests += 1
        if isinstance(action, Put):
            action = ex.on_response(409, x_last_uuid=HEAD)
        else:
            action = ex.on_refetched([{"uuid": HEAD}])
    assert action.outcome is AppendOutcome.RETRIES_EXHAUSTED
    assert not action.ok
    assert requests == 6  # three PUTs, each followed by a read


def test_chain_moving_twice_is_adopted_twice_not_called_a_duplicate() -> None:
    ex, _ = make()
    ex.start(has_token=True)
    assert ex.on_response(409, x_last_uuid=OTHER) == Put(OTHER, 1)
    action = ex.on_response(409, x_last_uuid=HEAD)
    assert isinstance(action, Wait)
    assert action.contention
    assert action.attempt == 1
    assert 0 <= action.delay <= 0.005
    assert ex.on_waited() == Put(HEAD, 1)


def test_lost_races_never_use_up_the_attempts() -> None:
    ex, _ = make(max_attempts=2)
    action = ex.start(has_token=True)
    for n in range(50):
        action = ex.on_response(409, x_last_uuid=f"other-{n}")
        if isinstance(action, Wait):
            assert action.contention
            assert action.delay <= 0.5
            action = ex.on_waited()
        assert action == Put(f"other-{n}", 1)
    assert ex.on_response(200) == Done(AppendOutcome.STORED, 200)


def test_409_without_header_refetches_and_adopts_last_uuid_bearing_entry() -> None:
    ex, rec = make()
    ex.start(has_token=True)
    assert ex.on_response(409) == Refetch()
    logs = [{"uuid": HEAD}, {"uuid": OTHER}, {"type": "summary", "leafUuid": OTHER}]
    assert ex.on_refetched(logs) == Put(OTHER, 1)
    assert ex.head == OTHER
    assert rec.names() == [ev.SESSION_PERSIST_409_ADOPT_SERVER_UUID]


@pytest.mark.parametrize("logs", [None, [], [{"type": "summary"}]])
def test_409_without_header_and_no_discoverable_head_fails(logs: Any) -> None:
    ex, rec = make()
    ex.start(has_token=True)
    ex.on_response(409)
    action = ex.on_refetched(logs)
    assert action == Done(AppendOutcome.CONFLICT, 409)
    assert not action.ok
    assert rec.names() == [ev.SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION]


def test_a_read_finding_the_head_this_request_sent_marks_it_refused_at_the_head() -> None:
    ex, _ = make()
    ex.start(has_token=True)
    assert ex.on_response(409) == Refetch()
    assert not ex.refused_at_head
    # The head is where the refused request said it was, and the entry is not in:
    # the server handled the request before that head was stored.
    assert ex.on_refetched([{"uuid": OTHER}, {"uuid": HEAD}]) == Put(HEAD, 2)
    assert ex.refused_at_head
    assert ex.on_response(200) == Done(AppendOutcome.STORED, 200)
    assert ex.refused_at_head


@pytest.mark.parametrize(
    "logs",
    [
        [{"uuid": HEAD}, {"uuid": OTHER}],  # the head moved on: another writer
        [{"uuid": HEAD}, {"uuid": UUID}],  # the entry is in: its reply was lost
        None,  # the read failed
    ],
)
def test_other_reads_do_not_mark_it_refused_at_the_head(logs: Any) -> None:
    ex, _ = make()
    ex.start(has_token=True)
    ex.on_response(409)
    ex.on_refetched(logs)
    assert not ex.refused_at_head


def test_a_409_naming_another_head_does_not_mark_it_refused_at_the_head() -> None:
    ex, _ = make()
    ex.start(has_token=True)
    assert ex.on_response(409, OTHER) == Put(OTHER, 1)
    assert not ex.refused_at_head


def test_refetch_finding_this_entry_at_the_head_is_recovery() -> None:
    ex, rec = make()
    ex.start(has_token=True)
    ex.on_response(409)
    assert ex.on_refetched([{"uuid": HEAD}, {"uuid": UUID}]).outcome is AppendOutcome.ALREADY_STORED
    assert rec.names() == [ev.SESSION_PERSIST_RECOVERED_FROM_409]


def test_refetch_finding_this_entry_inside_the_chain_is_a_duplicate() -> None:
    ex, _ = make()
    ex.start(has_token=True)
    ex.on_response(409)
    action = ex.on_refetched([{"uuid": UUID}, {"uuid": OTHER}])
    assert action.outcome is AppendOutcome.DUPLICATE
    assert ex.head == OTHER


def test_401_fails_at_once_without_retry() -> None:
    ex, rec = make()
    ex.start(has_token=True)
    action = ex.on_response(401)
    assert action == Done(AppendOutcome.UNAUTHORIZED, 401)
    assert rec.names() == [ev.SESSION_PERSIST_FAIL_BAD_TOKEN]


@pytest.mark.parametrize("status", [400, 403, 404, 413, 422])
def test_permanent_4xx_is_not_retried(status: int) -> None:
    ex, rec = make()
    ex.start(has_token=True)
    action = ex.on_response(status)
    assert action == Done(AppendOutcome.PERMANENT, status)
    assert rec.events == [
        ("error", ev.SESSION_PERSIST_FAIL_STATUS, {"status": status, "attempt": 1}),
        ("error", ev.SESSION_PERSIST_FAIL_PERMANENT, {"status": status}),
    ]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_back_off_on_the_seed_schedule(status: int) -> None:
    ex, rec = make()
    action = ex.start(has_token=True)
    delays = []
    while not isinstance(action, Done):
        assert isinstance(action, Put)
        action = ex.on_response(status)
        if isinstance(action, Wait):
            delays.append(action.delay)
            action = ex.on_waited()
    assert action == Done(AppendOutcome.RETRIES_EXHAUSTED, status)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert rec.names().count(ev.SESSION_PERSIST_FAIL_STATUS) == 10
    assert rec.events[-1] == ("error", ev.SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED, {"attempt": 10})


def test_transport_errors_are_retried_and_carry_no_status() -> None:
    ex, rec = make(max_attempts=2)
    ex.start(has_token=True)
    assert ex.on_transport_error(TimeoutError()) == Wait(0.5, 1)
    assert rec.events[0] == ("error", ev.SESSION_PERSIST_FAIL_STATUS, {"attempt": 1})
    ex.on_waited()
    assert ex.on_transport_error(ConnectionError()).outcome is AppendOutcome.RETRIES_EXHAUSTED


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_and_capped(status: int) -> None:
    ex, rec = make(retry_after_cap=5.0)
    ex.start(has_token=True)
    assert ex.on_response(status, retry_after="3") == Wait(3.0, 1)
    ex.on_waited()
    assert ex.on_response(status, retry_after="3600") == Wait(5.0, 2)
    assert ev.SESSION_PERSIST_RETRY_AFTER in rec.names()


def test_retry_after_is_ignored_on_other_statuses() -> None:
    ex, _ = make()
    ex.start(has_token=True)
    assert ex.on_response(500, retry_after="3") == Wait(0.5, 1)


def test_adoption_on_the_last_attempt_ends_like_the_seed() -> None:
    ex, rec = make(max_attempts=1)
    ex.start(has_token=True)
    assert ex.on_response(409, x_last_uuid=HEAD) == Refetch()
    action = ex.on_refetched([{"uuid": HEAD}])  # the same head: no progress, an attempt
    assert action == Done(AppendOutcome.RETRIES_EXHAUSTED, 409)
    # The seed's `continue` leaves the loop without the retries-exhausted event.
    assert ev.SESSION_PERSIST_ERROR_RETRIES_EXHAUSTED not in rec.names()


def test_diagnostics_carry_only_numbers_and_known_names() -> None:
    ex, rec = make(max_attempts=3)
    ex.start(has_token=True)
    ex.on_response(409, x_last_uuid=OTHER)
    ex.on_response(500)
    ex.on_waited()
    ex.on_response(429, retry_after="1")
    for _level, name, data in rec.events:
        assert name in ev.EVENTS
        assert all(isinstance(v, int | float) for v in data.values())


def test_a_server_naming_a_new_head_for_ever_is_given_up_on() -> None:
    from ingress_logging.protocol._append import CONTENTION_MAX_ROUNDS

    ex, rec = make()
    action = ex.start(has_token=True)
    for n in range(CONTENTION_MAX_ROUNDS + 1):
        action = ex.on_response(409, x_last_uuid=f"head-{n}")
        if isinstance(action, Wait):
            action = ex.on_waited()
    assert action == Done(AppendOutcome.CONFLICT, 409)
    assert rec.names()[-1] == ev.SESSION_PERSIST_FAIL_CONCURRENT_MODIFICATION
