"""The seams issue 8 plugs into: the retry budget hook and the durable spool."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ingress_logging.protocol import RetryPolicy


class CountingBudget:
    """Holds every retry back once (asks again after 20 ms), counts the calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acquires = 0
        self.successes = 0
        self.failures = 0
        self.wakeup: Callable[[], None] | None = None

    def acquire(self) -> float:
        with self.lock:
            self.acquires += 1
            return 0.02 if self.acquires % 2 else 0.0

    def record_success(self) -> None:
        with self.lock:
            self.successes += 1

    def record_failure(self) -> None:
        with self.lock:
            self.failures += 1

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        self.wakeup = callback

    def set_diagnostics(self, sink: object) -> None:
        self.sink = sink

    def snapshot(self) -> dict[str, int]:
        return {"acquires": self.acquires}


def test_budget_is_consulted_before_every_retry_and_told_every_result(ingress_server, make_engine):
    budget = CountingBudget()
    engine = make_engine(
        retry_budget=budget, retry_policy=RetryPolicy(max_attempts=5, base_delay=0.001)
    )
    assert budget.wakeup is not None
    ingress_server.faults.fail_next(3, status=503, session_id="bud")
    engine.submit("bud", {"type": "user", "message": "x"})
    engine.submit("other", {"type": "user", "message": "y"})
    assert engine.flush(5)
    # 3 retries, each held back once and then allowed: 6 acquires.
    assert (budget.acquires, budget.failures, budget.successes) == (6, 3, 2)
    puts = [r for r in ingress_server.requests if r.session_id == "bud"]
    assert len(puts) == 4
    # Each retry came at least one held-back interval (20 ms) after the failure.
    assert all(b.t - a.t >= 0.02 for a, b in itertools.pairwise(puts))
    health = engine.stats()
    assert health.retried == 3
    assert health.retry_budget == {"acquires": 6}


def test_budget_wakeup_releases_held_back_sessions_at_once(ingress_server, make_engine, wait_until):
    class Closed(CountingBudget):
        def acquire(self) -> float:
            with self.lock:
                self.acquires += 1
                return 0.0 if self.acquires > 1 else 60.0  # first ask: wait a minute

    budget = Closed()
    engine = make_engine(retry_budget=budget)
    ingress_server.faults.fail_next(1, status=503, session_id="w")
    engine.submit("w", {"type": "user", "message": "x"})
    wait_until(lambda: budget.acquires == 1, what="retry held back")
    assert budget.wakeup is not None
    budget.wakeup()
    assert engine.flush(5)  # would take a minute without the wakeup
    assert len(ingress_server.entries("w")) == 1


def test_a_wakeup_between_the_budgets_answer_and_the_booking_is_not_lost(
    ingress_server, make_engine
):
    """The budget re-opens (another session's probe succeeded) right after it told
    this session to hold back, before the worker has put the session on the timer
    heap: the wakeup must still release it, not leave it waiting the whole hold."""

    class WakesWhileAnswering(CountingBudget):
        def acquire(self) -> float:
            with self.lock:
                self.acquires += 1
                first = self.acquires == 1
            if first:
                assert self.wakeup is not None
                self.wakeup()  # lands before the worker books the hold below
                return 60.0
            return 0.0

    budget = WakesWhileAnswering()
    engine = make_engine(retry_budget=budget)
    ingress_server.faults.fail_next(1, status=503, session_id="lw")
    assert engine.submit("lw", {"type": "user", "message": "x"})
    assert engine.flush(5)  # a lost wakeup: held for 60 s, the flush times out
    assert budget.acquires == 2
    assert len(ingress_server.entries("lw")) == 1


class MemorySpool:
    """The ``Spool`` seam in memory: what was accepted and not yet acknowledged."""

    def __init__(self, pending: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        self.rows: dict[int, tuple[str, dict[str, Any]]] = {}
        self.next = 0
        self.acked: list[int] = []
        self.replayed = list(pending or [])
        self.closed = False

    def accept(self, session_id: str, entry: dict[str, Any]) -> int:
        self.next += 1
        self.rows[self.next] = (session_id, dict(entry))
        return self.next

    def acknowledge(self, key: object) -> None:
        assert isinstance(key, int)
        self.acked.append(key)
        del self.rows[key]

    def replay(self) -> list[tuple[str, dict[str, Any]]]:
        return self.replayed

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict[str, int]:
        return {"pending": len(self.rows)}


def test_spool_accepts_finished_entries_and_is_acknowledged_on_delivery(
    ingress_server, make_engine
):
    earlier = {"type": "user", "message": "from the last run", "uuid": "1" * 8 + "-aaaa"}
    spool = MemorySpool(pending=[("sp", earlier)])
    engine = make_engine(spool=spool)
    engine.submit("sp", {"type": "user", "message": "now"})
    engine.submit("sp", lambda: {"type": "user", "message": "built"})
    # Accepted on the caller's thread, already finished (uuid and chain assigned).
    accepted = [entry for _, entry in spool.rows.values()]
    assert [e["message"] for e in accepted] == ["from the last run", "now", "built"]
    assert accepted[2]["parentUuid"] == accepted[1]["uuid"]
    assert engine.flush(5)
    assert spool.rows == {}
    assert sorted(spool.acked) == [1, 2, 3]
    stored = ingress_server.entries("sp")
    assert [e["message"] for e in stored] == ["from the last run", "now", "built"]
    assert stored[1]["uuid"] == accepted[1]["uuid"]
    engine.close(1.0)
    assert spool.closed


def _child_submits(base_url: str, token: str, sid: str) -> None:
    from ingress_logging.delivery import DeliveryEngine

    engine = DeliveryEngine(base_api_url=base_url, token=token)
    for i in range(5):
        engine.submit(sid, {"type": "user", "message": str(i)})
    # No flush, no close: the atexit hook of the worker process delivers.


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_multiprocessing_workers_deliver_their_own_entries(ingress_server):
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(
            target=_child_submits, args=(ingress_server.base_url, ingress_server.token, f"mp{k}")
        )
        for k in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for k in range(3):
        assert [e["message"] for e in ingress_server.entries(f"mp{k}")] == [
            "0",
            "1",
            "2",
            "3",
            "4",
        ]
