"""Idle sessions are forgotten beyond ``max_idle_sessions``; chains, order and totals hold.

Against the real local server: an app with one session per job must not grow
the engine without bound, and forgetting a session must cost nothing but its
per-session numbers in ``stats().sessions``.
"""

from __future__ import annotations

import os

import pytest

from ingress_logging.delivery import DeliveryEngine
from ingress_logging.delivery._probe import EngineProbe
from ingress_logging.protocol import RetryPolicy


def _messages(ingress_server, sid: str) -> list[str]:
    return [e["message"] for e in ingress_server.entries(sid) if e.get("type") == "user"]


def test_a_thousand_sessions_stay_bounded_and_chain_through_eviction(ingress_server, make_engine):
    cap, batch = 10, 50
    engine = make_engine(max_idle_sessions=cap, max_concurrency=4)
    sids = [f"job-{k}" for k in range(1000)]
    for round_ in ("first", "second"):
        for start in range(0, len(sids), batch):
            for sid in sids[start : start + batch]:
                assert engine.submit(sid, {"type": "user", "message": f"{sid} {round_}"})
            # At most the batch is busy; every idle one beyond the cap is gone.
            assert len(engine.stats().sessions) <= cap + batch
            assert engine.flush(20)
            assert len(engine.stats().sessions) <= cap
    assert EngineProbe(engine).evicted() >= 2 * len(sids) - 2 * cap
    for sid in sids:
        stored = ingress_server.entries(sid)
        assert [e["message"] for e in stored] == [f"{sid} first", f"{sid} second"]
        # The head survived the eviction of the session's state: still chained.
        assert stored[0]["parentUuid"] is None
        assert stored[1]["parentUuid"] == stored[0]["uuid"]
    puts = [r for r in ingress_server.requests if r.method == "PUT"]
    assert len(puts) == 2 * len(sids)  # once each, and no 409 round trip to find a head
    assert all(r.status in (200, 201) for r in puts)
    health = engine.stats()
    assert (health.submitted, health.delivered, health.dropped, health.failed) == (2000, 2000, 0, 0)
    assert len(health.sessions) <= cap  # the per-session breakdown forgets evicted sessions


def test_a_head_forgotten_too_is_found_again_through_the_409_recovery(ingress_server, make_engine):
    engine = make_engine(max_idle_sessions=1, max_concurrency=1)
    probe = EngineProbe(engine)
    probe.keep_heads(1)  # keep a single evicted head: the rest are forgotten
    sids = [f"s{k}" for k in range(6)]
    for round_ in ("one", "two"):
        for sid in sids:
            assert engine.submit(sid, {"type": "user", "message": f"{sid} {round_}"})
            assert engine.flush(10)
    # Only the last session's transport head and state-or-head survived.
    first_puts = {sid: [r for r in ingress_server.requests if r.session_id == sid] for sid in sids}
    recovered = 0
    for sid in sids:
        stored = ingress_server.entries(sid)
        assert [e["message"] for e in stored] == [f"{sid} one", f"{sid} two"]  # once, in order
        assert stored[0]["parentUuid"] is None
        puts = first_puts[sid]
        if any(r.status == 409 for r in puts):
            recovered += 1
            # Forgotten head: the entry went without Last-Uuid, the server named
            # the head (x-last-uuid), the retry carried it, in the body too.
            assert puts[1].last_uuid is None
            assert puts[1].status == 409
            assert puts[2].last_uuid == stored[0]["uuid"]
            assert stored[1]["parentUuid"] == stored[0]["uuid"]
            assert len(puts) == 3
        else:
            assert stored[1]["parentUuid"] == stored[0]["uuid"]
    assert recovered >= len(sids) - 2  # all but the ones still remembered
    health = engine.stats()
    assert (health.submitted, health.delivered, health.failed, health.dropped) == (12, 12, 0, 0)
    assert len(probe.kept_heads()) <= 1
    client_heads = probe.client_heads()
    assert client_heads is not None
    assert client_heads <= 3  # the client's map is bounded with the engine's


def test_totals_stay_exact_and_a_session_owing_a_gap_is_kept_up_to_the_cap(
    ingress_server, make_engine
):
    engine = make_engine(max_idle_sessions=2, max_concurrency=2)
    ingress_server.faults.fail_next(1, status=400, session_id="bad")
    assert engine.submit("bad", {"type": "user", "message": "lost"})
    assert engine.flush(10).failed == 1
    assert engine.submit("ok-0", {"type": "user", "message": "x"})
    assert engine.flush(10)
    # Within the cap, the session owing a gap keeps it: the next entry writes it.
    assert engine.stats().sessions.keys() == {"bad", "ok-0"}
    assert engine.submit("bad", {"type": "user", "message": "after"})
    assert engine.flush(10)
    assert [e.get("subtype") or e["message"] for e in ingress_server.entries("bad")] == [
        "gap",
        "after",
    ]
    health = engine.stats()
    assert (health.submitted, health.delivered, health.failed) == (3, 2, 1)
    assert (health.gaps_written, health.gaps_unmarked) == (1, 0)


def test_sessions_owing_gaps_beyond_the_cap_are_forgotten_and_counted(
    ingress_server, make_engine, diagnostics
):
    engine = make_engine(max_idle_sessions=2, max_concurrency=2, diagnostics=diagnostics)
    ingress_server.faults.fail_next(1, status=400, session_id="bad")

    def broken() -> dict[str, str]:
        raise RuntimeError("no entry")

    assert engine.submit("bad", {"type": "user", "message": "lost"})
    assert engine.submit("broken", broken)
    assert engine.flush(10).failed == 1
    for k in range(40):
        assert engine.submit(f"ok-{k}", {"type": "user", "message": "x"})
        assert engine.submit(f"ok-{k}", {"type": "user", "message": "y"})
    assert engine.flush(20)
    health = engine.stats()
    assert len(health.sessions) <= 2
    assert (health.submitted, health.delivered, health.failed, health.dropped) == (82, 80, 1, 1)
    assert health.failed_by_reason == {"permanent": 1}
    assert health.dropped_by_reason == {"build_error": 1}
    assert health.gaps_unmarked == 2  # both owed gaps, aggregated when their sessions went
    engine.close(5)
    unmarked = [d for _, name, d in diagnostics.events if name == "delivery_gap_unmarked"]
    assert sum(d["count"] for d in unmarked) == 2
    # A forgotten session's next entry carries no gap entry: the loss is in the total.
    assert [e.get("subtype") for e in ingress_server.entries("bad")] == []


def test_a_session_in_backoff_with_queued_entries_is_never_evicted(
    ingress_server, make_engine, wait_for
):
    slow_retry = RetryPolicy(max_attempts=5, base_delay=0.15, max_delay=0.3)
    engine = make_engine(
        max_idle_sessions=0, max_concurrency=2, retry_policy=slow_retry, pipeline_window=1
    )
    ingress_server.faults.fail_next(2, status=503, session_id="slow")
    for i in range(3):
        assert engine.submit("slow", {"type": "user", "message": f"slow {i}"})
    ingress_server.wait_for_requests(1)
    others = [f"fast-{k}" for k in range(30)]
    for sid in others:
        assert engine.submit(sid, {"type": "user", "message": sid})
    probe = EngineProbe(engine)
    wait_for(
        lambda: not set(others) & set(probe.kept_sessions()),  # cap 0: idle ones go
        what="the other sessions delivered and evicted",
    )
    assert all(_messages(ingress_server, sid) == [sid] for sid in others)
    slow = probe.session("slow")
    assert slow is not None  # in backoff (or retrying) with entries queued: kept
    assert slow.has_current
    assert slow.queued == 2
    assert engine.flush(10)
    assert _messages(ingress_server, "slow") == ["slow 0", "slow 1", "slow 2"]
    stored = ingress_server.entries("slow")
    assert stored[1]["parentUuid"] == stored[0]["uuid"]
    assert engine.stats().retried >= 2
    assert probe.kept_sessions() == []  # idle at last, and the cap is 0


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_max_idle_sessions_is_checked(make_engine, bad):
    with pytest.raises((ValueError, TypeError), match="max_idle_sessions"):
        DeliveryEngine(base_api_url="http://127.0.0.1:9", token="t", max_idle_sessions=bad)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_forked_child_starts_with_no_sessions_and_no_heads(ingress_server, make_engine):
    engine = make_engine(max_idle_sessions=1)
    for sid in ("a", "b", "c"):
        engine.submit(sid, {"type": "user", "message": "parent"})
        assert engine.flush(10)
    probe = EngineProbe(engine)
    assert len(probe.kept_heads()) == 2
    pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only an exit code
        code = 1
        try:
            ok = not probe.kept_sessions() and not probe.kept_heads()
            ok = ok and not probe.idle_sessions()
            for sid in ("a", "d"):
                engine.submit(sid, {"type": "user", "message": "child"})
                ok = ok and bool(engine.flush(10))
            ok = ok and probe.kept_sessions() == ["d"] and probe.kept_heads() == ["a"]
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The child knew no head for "a": its entry found it through the 409 recovery.
    assert [e["message"] for e in ingress_server.entries("a")] == ["parent", "child"]
    assert [e["message"] for e in ingress_server.entries("d")] == ["child"]
