"""``AppendWindow``: pipelined appends recovered from the chain, sans-I/O.

A small model of the server's chain rule (PROTOCOL.md: ``Last-Uuid`` must be
the head; a uuid already stored gets 409 naming the head) processes one
connection's requests in order, with faults at chosen positions; the window
is driven the way a pipelined connection drives it. The same properties are
checked over real sockets, through a delaying proxy, in
tests/client/test_pipelined.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingress_logging.protocol import (
    AppendOutcome,
    AppendWindow,
    Done,
    Put,
    Refetch,
    RetryPolicy,
    Send,
    Wait,
    reorder_shown,
)

POLICY = RetryPolicy(max_attempts=50, base_delay=0.0, max_delay=0.0)


@dataclass
class Chain:
    """The server's rule for one session; ``faults`` are consumed one request each."""

    stored: list[str | None] = field(default_factory=list)
    faults: list[str | None] = field(default_factory=list)
    puts: int = 0
    headless: bool = False  # an older server: no x-last-uuid on a 409

    @property
    def head(self) -> str | None:
        return next((u for u in reversed(self.stored) if u is not None), None)

    def put(self, uuid: str | None, last: str | None) -> tuple[int | None, str | None, bool]:
        """(status or None for a lost reply, x-last-uuid, connection still open)."""
        self.puts += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault in ("503", "429"):
            return int(fault), None, True
        named = None if self.headless else self.head
        if uuid is not None and uuid in self.stored:
            return 409, named, fault != "drop"
        if last != self.head:
            return 409, named, fault != "drop"
        self.stored.append(uuid)
        if fault == "drop":  # stored, then the connection closed without a reply
            return None, None, False
        if fault == "500":  # stored, then answered as if the server failed
            return 500, None, True
        return (201 if len(self.stored) == 1 else 200), None, True

    def read(self) -> list[dict[str, Any]]:
        return [{"uuid": u} if u is not None else {"type": "summary"} for u in self.stored]


def drive(
    window: AppendWindow, chain: Chain, uuids: list[str | None], *, reverse: bool = False
) -> tuple[list[tuple[int, Done]], int]:
    """Run the window to the end against ``chain``; (outcomes, most appends in flight).

    ``reverse``: the path hands the server each burst of appends written back to
    back in reverse order (replies still come in the order written); no faults.
    """
    for uuid in uuids:
        window.add(uuid)
    outcomes: list[tuple[int, Done]] = []
    widest = 0
    wire: list[tuple[int | None, str | None, bool]] = []  # replies on the connection
    sent_uuid = dict(enumerate(uuids))
    steps = 0
    while not window.idle and not window.stopped:
        steps += 1
        assert steps < 100_000, "no progress"
        if window.recovery is not None:
            exchange = window.recovery
            action = exchange.action
            seq = window.recovering_seq
            assert seq is not None
            while not isinstance(action, Done):
                if isinstance(action, Put):
                    status, named, _ = chain.put(sent_uuid[seq], action.last_uuid)
                    if status is None:
                        action = exchange.on_transport_error(None)
                    else:
                        action = exchange.on_response(status, named, None)
                elif isinstance(action, Refetch):
                    action = exchange.on_refetched(chain.read())
                else:
                    assert isinstance(action, Wait)
                    action = exchange.on_waited()
            window.on_recovered(action)
            outcomes += window.take_outcomes()
            continue
        sends: list[Send] = window.to_send()
        if reverse:
            replies = {s.seq: chain.put(sent_uuid[s.seq], s.last_uuid) for s in sends[::-1]}
            wire += (replies[s.seq] for s in sends)
            sends = []
        open_ = all(alive for *_, alive in wire)
        for send in sends:  # written back to back; the server handles them in order
            if not open_:
                break
            reply = chain.put(sent_uuid[send.seq], send.last_uuid)
            wire.append(reply)
            open_ = reply[2]
        widest = max(widest, window.in_flight)
        assert window.in_flight > 0
        status, named, alive = wire.pop(0) if wire else (None, None, False)
        if status is None:
            window.on_lost()
            wire.clear()
        else:
            window.on_reply(status, named, None)
            if not alive:  # a reply that closes the connection: the rest are lost
                window.on_lost()
                wire.clear()
        outcomes += window.take_outcomes()
    return outcomes, widest


def uuids_for(n: int) -> list[str | None]:
    return [f"u{i}" for i in range(n)]


def test_a_clean_run_keeps_the_window_full_and_stores_in_order() -> None:
    chain = Chain()
    window = AppendWindow(None, window=5, policy=POLICY, emit=lambda *a: None)
    outcomes, widest = drive(window, chain, uuids_for(20))
    assert chain.stored == uuids_for(20)
    assert [seq for seq, _ in outcomes] == list(range(20))
    assert all(done.outcome is AppendOutcome.STORED for _, done in outcomes)
    assert widest == 5
    assert chain.puts == 20
    assert window.head == "u19"


def test_window_one_is_one_at_a_time() -> None:
    chain = Chain()
    window = AppendWindow(None, window=1, policy=POLICY, emit=lambda *a: None)
    _, widest = drive(window, chain, uuids_for(5))
    assert widest == 1
    assert chain.stored == uuids_for(5)


def test_the_sends_chain_last_uuid_before_acknowledgement() -> None:
    window = AppendWindow("h", window=3, policy=POLICY, emit=lambda *a: None)
    for uuid in ("a", "b", "c", "d"):
        window.add(uuid)
    assert window.to_send() == [Send(0, "h"), Send(1, "a"), Send(2, "b")]
    assert window.to_send() == []
    window.on_reply(200)
    assert window.to_send() == [Send(3, "c")]


def test_a_failure_drops_the_window_to_one_and_acknowledgements_widen_it() -> None:
    window = AppendWindow("h", window=4, policy=POLICY, emit=lambda *a: None)
    for uuid in "abcdef":
        window.add(uuid)
    assert len(window.to_send()) == 4
    window.on_reply(200)  # a
    assert window.to_send() == [Send(4, "d")]  # e
    window.on_reply(503)  # b fails; c, d, e meet head a
    for _ in range(3):
        window.on_reply(409, "a")
    exchange = window.recovery
    assert exchange is not None
    assert isinstance(exchange.action, Wait)
    assert exchange.on_waited() == Put("a", 2)
    done = exchange.on_response(200)
    assert isinstance(done, Done)
    window.on_recovered(done)
    assert window.to_send() == [Send(2, "b")]  # c alone
    window.on_reply(200)
    assert window.to_send() == [Send(3, "c"), Send(4, "d")]  # d and e: widened to 2


def test_the_start_window_is_the_callers() -> None:
    window = AppendWindow(None, window=8, policy=POLICY, emit=lambda *a: None, start=2)
    for uuid in "abcd":
        window.add(uuid)
    assert len(window.to_send()) == 2
    window.on_reply(201)
    assert len(window.to_send()) == 2  # widened to 3: b in flight, c and d written


def test_a_uuidless_entry_is_a_barrier() -> None:
    window = AppendWindow("h", window=5, policy=POLICY, emit=lambda *a: None)
    for uuid in ("a", None, "b"):
        window.add(uuid)
    assert window.to_send() == [Send(0, "h")]  # not the summary while a is in flight
    window.on_reply(200)
    assert window.to_send() == [Send(1, "a")]  # the summary alone
    window.on_reply(200)
    assert window.to_send() == [Send(2, "a")]  # the head did not move
    window.on_reply(200)
    assert window.idle


def test_a_503_mid_window_resends_from_the_failed_entry() -> None:
    chain = Chain(faults=[None, None, "503"])
    window = AppendWindow(None, window=5, policy=POLICY, emit=lambda *a: None)
    outcomes, _ = drive(window, chain, uuids_for(8))
    assert chain.stored == uuids_for(8)
    assert [seq for seq, _ in outcomes] == list(range(8))
    assert all(done.ok for _, done in outcomes)


def test_a_stored_entry_whose_reply_was_lost_is_not_stored_twice() -> None:
    chain = Chain(faults=[None, "drop"])
    window = AppendWindow(None, window=5, policy=POLICY, emit=lambda *a: None)
    outcomes, _ = drive(window, chain, uuids_for(6))
    assert chain.stored == uuids_for(6)
    assert dict(outcomes)[1].outcome is AppendOutcome.ALREADY_STORED


def test_an_error_after_commit_is_proven_stored_by_the_next_reply() -> None:
    chain = Chain(faults=[None, "500"])
    window = AppendWindow(None, window=5, policy=POLICY, emit=lambda *a: None)
    outcomes, _ = drive(window, chain, uuids_for(6))
    assert chain.stored == uuids_for(6)
    assert chain.puts == 6  # nothing was resent
    assert dict(outcomes)[1].outcome is AppendOutcome.ALREADY_STORED


def test_a_409_naming_an_entry_of_the_window_proves_it_stored() -> None:
    # u1 stored but answered 500, u2 refused (503), u3 meets head u1: proof enough.
    chain = Chain(faults=[None, "500", "503"])
    window = AppendWindow(None, window=5, policy=POLICY, emit=lambda *a: None)
    outcomes, _ = drive(window, chain, uuids_for(6))
    assert chain.stored == uuids_for(6)
    assert chain.puts == 6 + 1 + 3  # u0..u5 (sliding), u2 again, u3..u5; u1 never resent
    assert dict(outcomes)[1].outcome is AppendOutcome.ALREADY_STORED


def test_a_409_echoing_the_sent_head_proves_nothing() -> None:
    window = AppendWindow(None, window=3, policy=POLICY, emit=lambda *a: None)
    for uuid in ("a", "b", "c"):
        window.add(uuid)
    window.to_send()
    window.on_reply(503)  # a not stored
    window.on_reply(409, "a")  # b's reply echoes the Last-Uuid it sent: not proof of a
    window.on_reply(409, "b")  # ... nor is c's
    assert window.take_outcomes() == []
    assert window.recovering_seq == 0


def test_another_writer_mid_window_is_adopted() -> None:
    chain = Chain()
    window = AppendWindow(None, window=4, policy=POLICY, emit=lambda *a: None)
    for uuid in uuids_for(6):
        window.add(uuid)
    for send in window.to_send():
        if send.seq == 2:
            chain.stored.append("foreign")
        window_reply = chain.put(f"u{send.seq}", send.last_uuid)
        assert window_reply[0] is not None
        window.on_reply(window_reply[0], window_reply[1])
    # u0, u1 stored; u2 and u3 met the foreign head and are resent after it.
    assert window.recovery is not None
    action = window.recovery.action
    assert isinstance(action, Put)
    assert action.last_uuid == "foreign"


def test_a_reordering_path_drops_the_window_to_one() -> None:
    window = AppendWindow("h", window=4, policy=POLICY, emit=lambda *a: None)
    for uuid in ("a", "b", "c"):
        window.add(uuid)
    window.to_send()
    window.on_reply(200)  # a stored ...
    window.on_reply(409, "h")  # ... yet b (sent with Last-Uuid a) met the head before a
    window.on_reply(409, "h")
    assert window.reordered
    assert window.window == 1
    assert window.recovery is not None
    assert window.recovery.action == Put("a", 1)


@pytest.mark.parametrize("head", [None, "h"])
def test_a_headless_409_behind_an_acknowledged_entry_shows_reordering_in_recovery(
    head: str | None,
) -> None:
    # b, written behind a, meets a 409 naming no head (a new session has none,
    # an older server sends none): the window cannot tell, its recovery can.
    window = AppendWindow(head, window=4, policy=POLICY, emit=lambda *a: None)
    for uuid in ("a", "b"):
        window.add(uuid)
    window.to_send()
    window.on_reply(200)  # a stored ...
    window.on_reply(409)  # ... yet b, sent with Last-Uuid a, was refused
    assert not window.reordered
    exchange = window.recovery
    assert exchange is not None
    assert window.recovery_behind
    assert exchange.action == Refetch()
    # The read finds a at the head and no b: the server handled b before a.
    action = exchange.on_refetched([{"uuid": "a"}])
    assert action == Put("a", 2)
    assert reorder_shown(exchange, behind=window.recovery_behind)
    assert exchange.on_response(200) == Done(AppendOutcome.STORED, 200)
    window.on_recovered(exchange.action)
    assert window.reordered
    assert (window.limit, window.window) == (1, 1)
    assert [seq for seq, _ in window.take_outcomes()] == [0, 1]


def test_a_refused_entry_written_alone_shows_no_reordering() -> None:
    # Nothing was in flight before b: a 409 at the head it sent is the server's
    # doing, not the path's (no predecessor could have been handled after it).
    window = AppendWindow("a", window=4, policy=POLICY, emit=lambda *a: None)
    window.add("b")
    window.to_send()
    window.on_reply(409)
    exchange = window.recovery
    assert exchange is not None
    assert not window.recovery_behind
    exchange.on_refetched([{"uuid": "a"}])
    assert exchange.refused_at_head
    assert not reorder_shown(exchange, behind=window.recovery_behind)
    exchange.on_response(200)
    window.on_recovered(exchange.action)
    assert not window.reordered
    assert window.limit == 4


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 30),
    size=st.integers(1, 8),
    headless=st.booleans(),
    fresh=st.booleans(),
)
def test_a_path_reversing_each_burst_is_detected_and_loses_nothing(
    n: int, size: int, headless: bool, fresh: bool
) -> None:
    uuids = uuids_for(n)
    chain = Chain(stored=[] if fresh else ["h"], headless=headless)
    window = AppendWindow(None if fresh else "h", window=size, policy=POLICY, emit=lambda *a: None)
    outcomes, widest = drive(window, chain, uuids, reverse=True)
    assert [seq for seq, _ in outcomes] == list(range(n))
    assert all(done.ok for _, done in outcomes), outcomes
    assert chain.stored == ([] if fresh else ["h"]) + uuids
    # Any burst of two or more was handed over reversed; one alone is unharmed.
    assert window.reordered == (widest >= 2)


@pytest.mark.parametrize("status", [422, 401])
def test_an_entry_failing_for_good_stops_the_window(status: int) -> None:
    window = AppendWindow("h", window=4, policy=POLICY, emit=lambda *a: None)
    for uuid in ("a", "b", "c", "d"):
        window.add(uuid)
    assert [s.last_uuid for s in window.to_send()] == ["h", "a", "b", "c"]
    window.on_reply(200)  # a stored
    window.on_reply(status)  # b refused for good ...
    window.on_reply(409, "a")  # ... and c, d behind it with it: b never became the head
    window.on_reply(409, "a")
    outcomes = window.take_outcomes()
    assert [(seq, done.ok) for seq, done in outcomes] == [(0, True), (1, False)]
    # Nothing more is written: what takes b's place goes first (the driver's).
    assert window.stopped
    assert window.to_send() == []
    assert window.head == "a"
    assert not window.idle


def test_bad_window_sizes_are_refused() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="window"):
            AppendWindow(None, window=bad, policy=POLICY, emit=lambda *a: None)  # type: ignore[arg-type]


FAULTS = st.sampled_from([None, None, None, "503", "429", "drop", "500"])


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 30),
    size=st.integers(1, 8),
    faults=st.lists(FAULTS, max_size=60),
    summaries=st.sets(st.integers(0, 29), max_size=4),
    headless=st.booleans(),
)
def test_any_faults_at_any_position_store_each_entry_once_in_order(
    n: int, size: int, faults: list[str | None], summaries: set[int], headless: bool
) -> None:
    uuids = [None if i in summaries else f"u{i}" for i in range(n)]
    chain = Chain(faults=list(faults), headless=headless)
    window = AppendWindow(None, window=size, policy=POLICY, emit=lambda *a: None)
    outcomes, widest = drive(window, chain, uuids)
    assert [seq for seq, _ in outcomes] == list(range(n))
    assert all(done.ok for _, done in outcomes), outcomes
    assert widest <= size
    chained = [u for u in chain.stored if u is not None]
    assert chained == [u for u in uuids if u is not None]
    if not summaries & set(range(n)):
        assert chain.stored == uuids
    # A path that keeps order never looks like one that does not.
    assert not window.reordered
