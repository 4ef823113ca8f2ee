"""Independence of sessions, failures, gap entries, retries: exact numbers."""

from __future__ import annotations

import threading

from ingress_logging import diagnostics as ev
from ingress_logging.hookspecs import hookimpl
from ingress_logging.plugins import new_plugin_manager
from ingress_logging.protocol import RetryPolicy


def test_backoff_of_one_session_does_not_delay_another_even_with_one_worker(
    ingress_server, make_engine
):
    # One worker only: if a backoff occupied it, "fast" could not move at all.
    engine = make_engine(
        max_concurrency=1, retry_policy=RetryPolicy(max_attempts=5, base_delay=0.15)
    )
    ingress_server.faults.fail_next(3, status=503, session_id="slow")
    assert engine.submit("slow", {"type": "user", "message": "s0"})
    ingress_server.wait_for_requests(1)
    for i in range(10):
        assert engine.submit("fast", {"type": "user", "message": f"f{i}"})
    assert engine.flush(10)
    assert engine.stats().delivered == 11
    reqs = ingress_server.requests
    slow_ok = next(r for r in reqs if r.session_id == "slow" and r.status in (200, 201))
    fast = [r for r in reqs if r.session_id == "fast"]
    assert len(fast) == 10
    # Every fast entry was stored before the slow one's backoffs (0.15+0.3+0.6 s) ran out.
    assert all(r.t < slow_ok.t for r in fast)
    health = engine.stats()
    assert health.sessions["slow"].retried == 3
    assert health.sessions["fast"].retried == 0
    assert health.retried == 3


def test_slow_server_for_one_session_does_not_hold_back_others(ingress_server, make_engine):
    engine = make_engine(max_concurrency=4)
    ingress_server.faults.latency = 0.4  # every request takes 0.4 s to answer
    assert engine.submit("slow", {"type": "user", "message": "s"})
    for sid in ("a", "b", "c"):
        assert engine.submit(sid, {"type": "user", "message": sid})
    assert engine.flush(10)
    assert engine.stats().delivered == 4
    arrived = {r.session_id: r.t for r in ingress_server.requests}  # t: request line arrival
    # Each other session's request reached the server while "slow" was still being
    # answered: none of them waited for it.
    assert all(arrived[sid] - arrived["slow"] < 0.4 for sid in ("a", "b", "c"))


class DiagnosticsPlugin:
    """A real ``ingress_diagnostic`` hook implementation that records events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.threads: set[str] = set()

    @hookimpl
    def ingress_diagnostic(self, level, event, data) -> None:
        self.events.append((event, dict(data)))
        self.threads.add(threading.current_thread().name)


def test_permanent_failure_counts_moves_on_and_writes_a_gap(ingress_server, make_engine, wait_for):
    pm = new_plugin_manager(load_entrypoints=False)
    plugin = DiagnosticsPlugin()
    pm.register(plugin)
    events = plugin.events
    engine = make_engine(plugins=pm)
    assert engine.submit("p", {"type": "user", "message": "one"})
    assert engine.flush(5)
    ingress_server.faults.fail_next(1, status=400, session_id="p")
    assert engine.submit("p", {"type": "user", "message": "lost"})
    result = engine.flush(5)
    assert result.pending == 0
    assert (engine.stats().delivered, engine.stats().failed) == (1, 1)
    assert engine.submit("p", {"type": "user", "message": "three"})
    assert engine.flush(5)
    stored = ingress_server.entries("p")
    assert [e.get("message") for e in stored] == ["one", None, "three"]
    gap = stored[1]
    assert (gap["subtype"], gap["count"], gap["reason"], gap["sessionId"]) == (
        "gap",
        1,
        "permanent",
        "p",
    )
    assert gap["parentUuid"] == stored[0]["uuid"]
    assert stored[2]["parentUuid"] == gap["uuid"]
    health = engine.stats()
    assert (health.submitted, health.delivered, health.failed, health.dropped) == (3, 2, 1, 0)
    assert health.failed_by_reason == {"permanent": 1}
    assert health.gaps_written == 1
    wait_for(
        lambda: ("delivery_failed", {"count": 1, "reason": "permanent", "status": 400}) in events,
        what="the failure reported",
    )
    names = [e for e, _ in events]
    assert ("delivery_failed", {"count": 1, "reason": "permanent", "status": 400}) in events
    assert ev.SESSION_PERSIST_FAIL_PERMANENT in names  # the protocol core's, via the client
    assert ("delivery_gap_written", {"count": 1}) in events
    # Sinks run on the reporter thread only: never on a worker (the logging-lock rule).
    assert plugin.threads == {"ingress_logging.delivery.diagnostics"}
    assert ingress_server.token not in repr(events)


def test_retries_exhausted_then_recovery(ingress_server, make_engine):
    # One at a time, so that the three faults meet the first entry's attempts.
    engine = make_engine(
        retry_policy=RetryPolicy(max_attempts=3, base_delay=0.001), pipeline_window=1
    )
    ingress_server.faults.fail_next(3, status=503, session_id="r")
    engine.submit("r", {"type": "user", "message": "gone"})
    engine.submit("r", {"type": "user", "message": "kept"})
    assert engine.flush(5).pending == 0
    assert (engine.stats().delivered, engine.stats().failed) == (1, 1)
    stored = ingress_server.entries("r")
    assert [e.get("subtype") or e["message"] for e in stored] == ["gap", "kept"]
    assert stored[0]["reason"] == "retries_exhausted"
    assert stored[0]["parentUuid"] is None
    health = engine.stats().sessions["r"]
    assert (health.retried, health.failed, health.delivered) == (2, 1, 1)


def test_lost_reply_after_commit_is_not_doubled(ingress_server, make_engine):
    engine = make_engine()
    ingress_server.faults.drop_after_commit_next(2, session_id="d")
    for i in range(4):
        engine.submit("d", {"type": "user", "message": str(i)})
    assert engine.flush(5)
    assert [e["message"] for e in ingress_server.entries("d")] == ["0", "1", "2", "3"]


def test_unauthorized_fails_for_good_without_retry(ingress_server, make_engine):
    engine = make_engine(token="wrong-token")
    engine.submit("u", {"type": "user", "message": "x"})
    assert engine.flush(5).pending == 0
    assert (engine.stats().failed, engine.stats().delivered) == (1, 0)
    assert engine.stats().failed_by_reason == {"unauthorized": 1}
    assert len(ingress_server.requests) == 1
    assert "wrong-token" not in repr(engine)


def test_a_due_retry_is_not_starved_by_a_busy_session_on_the_only_worker(
    ingress_server, make_engine
):
    engine = make_engine(max_concurrency=1, retry_policy=RetryPolicy(base_delay=0.01))
    ingress_server.faults.fail_next(1, status=503, session_id="retry")
    engine.submit("retry", {"type": "user", "message": "r"})
    for i in range(300):
        engine.submit("busy", {"type": "user", "message": str(i)})
    assert engine.flush(30)
    reqs = ingress_server.requests
    retried_ok = next(r.t for r in reqs if r.session_id == "retry" and r.status in (200, 201))
    busy = [r.t for r in reqs if r.session_id == "busy"]
    # The retry went out once its 10 ms backoff was over, in the middle of the
    # busy session's stream - not after all 300 of its entries.
    assert retried_ok < busy[-1]
    assert sum(t > retried_ok for t in busy) > 50


def test_an_unusable_url_fails_the_entry_clearly_and_the_worker_lives_on(
    ingress_server, make_engine
):
    # Plain http to a non-loopback host with a token: the client refuses to send it.
    engine = make_engine(url_template="http://example.invalid/s/{session_id}")
    assert engine.submit("bad", {"type": "user", "message": "x"})
    assert engine.flush(5).pending == 0
    assert (engine.stats().failed, engine.stats().delivered) == (1, 0)
    assert engine.stats().failed_by_reason == {"error:InsecureTransportError": 1}
    assert ingress_server.requests == []
    # The same worker goes on to the next entry (which fails the same way).
    assert engine.submit("bad", {"type": "user", "message": "y"})
    assert engine.flush(5).pending == 0
    assert engine.stats().failed == 2
    assert engine.stats().workers == 1


def test_a_gap_entry_that_fails_is_tried_again_before_the_next_entry(ingress_server, make_engine):
    engine = make_engine(pipeline_window=1)  # each fault meets the append it is meant for
    engine.submit("g", {"type": "user", "message": "one"})
    assert engine.flush(5)
    ingress_server.faults.fail_next(2, status=400, session_id="g")  # "two", then its gap
    engine.submit("g", {"type": "user", "message": "two"})
    engine.submit("g", {"type": "user", "message": "three"})
    assert engine.flush(5).pending == 0
    assert engine.stats().failed == 1
    engine.submit("g", {"type": "user", "message": "four"})
    assert engine.flush(5)
    one, three, gap, four = ingress_server.entries("g")
    assert [one["message"], three["message"], gap["subtype"], four["message"]] == [
        "one",
        "three",
        "gap",
        "four",
    ]
    assert three["parentUuid"] == one["uuid"]  # sent without the marker that failed
    assert (gap["parentUuid"], gap["count"], gap["reason"]) == (three["uuid"], 1, "permanent")
    assert four["parentUuid"] == gap["uuid"]
    health = engine.stats()
    assert (health.delivered, health.failed, health.gaps_written) == (3, 1, 1)


def test_conflicts_are_resolved_by_the_protocol_core_across_steps(ingress_server, make_engine):
    engine = make_engine(pipeline_window=1)  # each fault meets the entry it is meant for
    engine.submit("c", {"type": "user", "message": "0"})
    assert engine.flush(5)
    ingress_server.faults.foreign_write_next(1, session_id="c")  # 409 naming another head
    ingress_server.faults.conflict_without_head_next(1, session_id="c")  # 409, GET needed
    for i in range(1, 4):
        engine.submit("c", {"type": "user", "message": str(i)})
    assert engine.flush(5)
    mine = [e["message"] for e in ingress_server.entries("c") if "message" in e]
    assert mine == ["0", "1", "2", "3"]  # plus the foreign writer's entry
    assert engine.stats().sessions["c"].delivered == 4
    gets = [r for r in ingress_server.requests if r.method == "GET" and r.session_id == "c"]
    assert len(gets) == 1  # the head was read once, for the header-less 409


def test_losing_every_race_for_the_head_starts_a_fresh_exchange(ingress_server, make_engine):
    """Another writer wins attempt after attempt: the seed would give the entry up
    after max_attempts; the engine pauses at random and tries a new exchange."""
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)
    engine = make_engine(retry_policy=policy)
    assert engine.submit("contended", {"type": "log", "n": 0})
    assert engine.flush(5.0).delivered == 1
    ingress_server.faults.foreign_write_next(3 * 2 + 1, session_id="contended")  # 2 rounds lost
    assert engine.submit("contended", {"type": "log", "n": 1})
    result = engine.flush(5.0)
    assert (result.delivered, result.failed) == (1, 0)
    ours = [e for e in ingress_server.entries("contended") if e.get("type") == "log"]
    assert [e["n"] for e in ours] == [0, 1]  # stored once, in order


def test_races_lost_to_another_writer_never_use_up_the_attempts(ingress_server, make_engine):
    """30 foreign entries in a row, each stored just before our PUT: 30 lost races
    on an entry that may try twice. Each loss is another writer's progress,
    not a failure: the entry goes in after them, once, chained to the last."""
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01)
    engine = make_engine(retry_policy=policy)
    ingress_server.faults.foreign_write_next(30, session_id="busy")
    assert engine.submit("busy", {"type": "log", "n": 0})
    result = engine.flush(10.0)
    assert (result.delivered, result.failed) == (1, 0)
    stored = ingress_server.entries("busy")
    assert [e.get("type") for e in stored].count("log") == 1
    assert stored[-1]["n"] == 0
    assert stored[-1]["parentUuid"] == stored[-2]["uuid"]
    assert engine.stats().retried == 0  # lost races are not retries of a failure
