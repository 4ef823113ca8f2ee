"""End to end: many sessions, many threads; complete, in order, once; exact health."""

from __future__ import annotations

import asyncio
import itertools
import threading

from ingress_logging.delivery import DeliveryEngine, FlushResult, get_shared_engine


def test_many_threads_many_sessions_arrive_complete_in_order_once(ingress_server, make_engine):
    engine = make_engine(max_concurrency=4)
    threads, sessions, per = 6, 12, 25
    submitted: dict[str, list[str]] = {f"s{k}": [] for k in range(sessions)}
    locks = {sid: threading.Lock() for sid in submitted}
    start = threading.Barrier(threads)

    def producer(t: int) -> None:
        start.wait()
        for i in range(per * sessions // threads):
            sid = f"s{(i + t) % sessions}"
            with locks[sid]:  # the submission order per session is the order of this list
                text = f"t{t}-{i}"
                assert engine.submit(sid, {"type": "user", "message": text})
                submitted[sid].append(text)

    workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    result = engine.flush(30)
    total = sum(len(v) for v in submitted.values())
    # Whatever was still on its way when flush() began got delivered.
    assert result == FlushResult(delivered=result.delivered)
    assert bool(result)
    for sid, texts in submitted.items():
        stored = ingress_server.entries(sid)
        assert [e["message"] for e in stored] == texts
        assert all(e["sessionId"] == sid for e in stored)
        # The engine's chain: each entry's parent is the previous one from this process.
        assert stored[0]["parentUuid"] is None
        for prev, cur in itertools.pairwise(stored):
            assert cur["parentUuid"] == prev["uuid"]
    health = engine.stats()
    assert (health.submitted, health.delivered, health.dropped, health.failed) == (
        total,
        total,
        0,
        0,
    )
    assert health.retried == 0
    assert health.pending == 0
    for sid, texts in submitted.items():
        assert health.sessions[sid].delivered == len(texts)
    puts = [r for r in ingress_server.requests if r.method == "PUT"]
    assert len(puts) == total  # once: no request was repeated


def test_builders_run_on_worker_in_order_and_callers_keys_are_kept(ingress_server, make_engine):
    engine = make_engine()
    seen: list[tuple[str, bool]] = []

    def builder(i: int):
        def build() -> dict:
            seen.append((threading.current_thread().name, engine.is_worker_thread()))
            return {"type": "user", "message": str(i)}

        return build

    for i in range(5):
        assert engine.submit("b1", builder(i))
    summary = {"type": "summary", "summary": "x", "uuid": None, "leafUuid": "abc"}
    assert engine.submit("b1", summary)
    assert engine.flush(10)
    stored = ingress_server.entries("b1")
    assert [e.get("message") for e in stored[:5]] == ["0", "1", "2", "3", "4"]
    assert stored[5]["type"] == "summary"
    assert stored[5]["uuid"] is None  # present (None) means: not part of the chain
    assert "parentUuid" not in stored[5]
    assert all(name.startswith("ingress_logging.") and flag for name, flag in seen)
    assert not engine.is_worker_thread()


def test_builder_that_raises_is_dropped_and_counted_neighbours_survive(ingress_server, make_engine):
    engine = make_engine()

    def broken() -> dict:
        raise RuntimeError("boom")

    assert engine.submit("b2", {"type": "user", "message": "before"})
    assert engine.submit("b2", broken)
    assert engine.submit("b2", lambda: "not a dict")  # type: ignore[arg-type,return-value]
    assert engine.submit("b2", {"type": "user", "message": "after"})
    assert engine.flush(10).pending == 0
    assert (engine.stats().delivered, engine.stats().dropped) == (2, 2)
    stored = ingress_server.entries("b2")
    assert [e.get("message") for e in stored] == ["before", None, "after"]
    gap = stored[1]
    assert (gap["type"], gap["subtype"], gap["count"], gap["reason"]) == (
        "system",
        "gap",
        2,
        "build_error",
    )
    assert gap["parentUuid"] == stored[0]["uuid"]
    assert stored[2]["parentUuid"] == gap["uuid"]
    health = engine.stats()
    assert health.dropped_by_reason == {"build_error": 2}
    assert health.gaps_written == 1


def test_usable_from_asyncio_without_blocking_the_loop(ingress_server, make_engine):
    engine = make_engine()

    async def main() -> list[bool]:
        return [engine.submit("a1", {"type": "user", "message": str(i)}) for i in range(20)]

    assert all(asyncio.run(main()))
    assert engine.flush(10)
    assert engine.stats().delivered == 20
    assert len(ingress_server.entries("a1")) == 20


def test_shared_engine_is_one_per_configuration(ingress_server):
    config = {"base_api_url": ingress_server.base_url, "token": ingress_server.token}
    first = get_shared_engine(**config)
    try:
        assert get_shared_engine(**config) is first
        other = get_shared_engine(**config, max_queue_entries=5)
        assert other is not first
        other.close(1.0)
        first.close(1.0)
        assert get_shared_engine(**config) is not first  # a closed engine is replaced
    finally:
        get_shared_engine(**config).close(1.0)


def test_invalid_session_id_raises_and_queues_nothing(make_engine):
    import pytest

    from ingress_logging.errors import InvalidSessionIdError

    engine: DeliveryEngine = make_engine()
    with pytest.raises(InvalidSessionIdError):
        engine.submit("../etc", {"type": "user"})
    assert engine.stats().submitted == 0
