"""The memory cap and its three overflow policies, with exact drop counts."""

from __future__ import annotations

import time

import pytest

from ingress_logging.hookspecs import hookimpl
from ingress_logging.plugins import new_plugin_manager


def _hold_first_request(gate, engine, sid: str) -> None:
    """Make the first entry of ``sid`` sit on a worker (held at the gate), then return."""
    assert engine.submit(sid, {"type": "user", "message": "0"})
    assert gate.holding.wait(10), "the first entry never reached the network"
    assert engine.stats().in_flight == 1


def test_drop_newest_refuses_and_counts_and_leaves_a_gap(
    ingress_server, make_engine, gate, wait_for
):
    drops: list[int] = []

    def sink(level, event, data) -> None:
        if event == "delivery_dropped":
            drops.append(data["count"])

    engine = make_engine(max_queue_entries=3, http_client=gate.client, diagnostics=sink)
    _hold_first_request(gate, engine, "q")
    accepted = [engine.submit("q", {"type": "user", "message": str(i)}) for i in range(1, 6)]
    assert accepted == [True, True, False, False, False]
    health = engine.stats()
    assert (health.submitted, health.dropped, health.queued_entries) == (6, 3, 3)
    assert health.dropped_by_reason == {"queue_full": 3}
    gate.open()
    assert engine.flush(10).delivered == 3
    engine.submit("q", {"type": "user", "message": "later"})
    assert engine.flush(5)
    stored = ingress_server.entries("q")
    assert [e.get("message") for e in stored] == ["0", "1", "2", None, "later"]
    assert (stored[3]["count"], stored[3]["reason"]) == (3, "queue_full")
    wait_for(lambda: sum(drops) == 3, what="the three drops reported")


def test_drop_oldest_evicts_queued_not_in_flight(ingress_server, make_engine, gate):
    engine = make_engine(max_queue_entries=3, overflow="drop_oldest", http_client=gate.client)
    _hold_first_request(gate, engine, "o")
    assert all(engine.submit("o", {"type": "user", "message": str(i)}) for i in range(1, 7))
    health = engine.stats()
    assert (health.dropped, health.queued_entries) == (4, 3)
    assert health.dropped_by_reason == {"evicted": 4}
    gate.open()
    assert engine.flush(10).delivered == 3
    stored = ingress_server.entries("o")
    assert [e.get("message") for e in stored] == ["0", None, "5", "6"]
    assert (stored[1]["count"], stored[1]["reason"]) == (4, "evicted")


def test_byte_cap_and_too_large(make_engine, gate):
    engine = make_engine(max_queue_bytes=8_000, http_client=gate.client)
    _hold_first_request(gate, engine, "b")
    assert not engine.submit("b", {"type": "user", "message": "x" * 10_000})  # alone too big
    big = {"type": "user", "message": "y" * 3_000}
    results = [engine.submit("b", dict(big)) for _ in range(4)]
    assert results.count(True) >= 1
    assert results[-1] is False
    health = engine.stats()
    assert health.queued_bytes <= 8_000
    assert health.dropped_by_reason["too_large"] == 1
    assert health.dropped_by_reason["queue_full"] == results.count(False)
    gate.open()
    result = engine.flush(10)
    assert (result.delivered, result.dropped) == (1 + results.count(True), 1 + results.count(False))


def test_block_waits_for_room_then_gives_up(ingress_server, make_engine, gate):
    engine = make_engine(
        max_queue_entries=2, overflow="block", block_timeout=0.2, http_client=gate.client
    )
    _hold_first_request(gate, engine, "k")
    assert engine.submit("k", {"type": "user", "message": "1"})
    t0 = time.monotonic()
    assert not engine.submit("k", {"type": "user", "message": "2"})
    waited = time.monotonic() - t0
    assert 0.2 <= waited < 2.0
    assert engine.stats().dropped_by_reason == {"block_timeout": 1}
    gate.open()
    result = engine.flush(10)
    assert (result.delivered, result.dropped) == (2, 1)
    # Room appears as entries are delivered: a blocked submit then succeeds.
    engine2 = make_engine(max_queue_entries=1, overflow="block", block_timeout=5.0)
    results = [engine2.submit("k2", {"type": "user", "message": str(i)}) for i in range(5)]
    assert results == [True] * 5
    assert engine2.flush(10)
    assert [e["message"] for e in ingress_server.entries("k2")] == ["0", "1", "2", "3", "4"]


def test_bad_configuration_is_refused(make_engine):
    with pytest.raises(ValueError):
        make_engine(overflow="drop_everything")
    with pytest.raises(ValueError):
        make_engine(max_queue_entries=0)
    with pytest.raises(ValueError):
        make_engine(max_concurrency=0)
    with pytest.raises(TypeError, match="max_queue_entries must be an int"):
        make_engine(max_queue_entries="100")  # e.g. a quoted value in a config file


@pytest.mark.parametrize("spelling", ["drop-oldest", "DROP_OLDEST", " drop oldest "])
def test_policy_names_from_config_files_are_accepted(make_engine, spelling):
    assert "overflow='drop_oldest'" in repr(make_engine(overflow=spelling))


def test_server_down_memory_stays_within_the_cap_and_drops_are_exact(
    ingress_server_factory, wait_for
):
    import gc
    import tracemalloc

    from ingress_logging.delivery import DeliveryEngine
    from ingress_logging.protocol import RetryPolicy

    srv = ingress_server_factory()
    url = srv.base_url
    srv.stop()
    cap = 256 * 1024
    drops: list[int] = []

    class Sink:
        @hookimpl
        def ingress_diagnostic(self, level, event, data) -> None:
            if event == "delivery_dropped":
                drops.append(data["count"])

    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(Sink())
    engine = DeliveryEngine(
        plugins=pm,
        base_api_url=url,
        token="t",
        max_queue_entries=1_000_000,
        max_queue_bytes=cap,
        retry_policy=RetryPolicy(max_attempts=1000, base_delay=0.05),
    )
    try:
        n = 20_000
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        refused = sum(
            not engine.submit(f"m{i % 8}", {"type": "user", "message": "m" * 100}) for i in range(n)
        )
        peak = tracemalloc.get_traced_memory()[1] - start
        tracemalloc.stop()
        health = engine.stats()
        assert health.queued_bytes <= cap
        # The cap plus a small constant, plus what each worker holds while its
        # request fails (the exception, the request: measured 5-7 KiB each; a
        # worker per ready session, 8 here, since a burst gets its workers).
        assert peak < cap + 128 * 1024 + 8 * 1024 * engine.max_concurrency
        assert refused == health.dropped == n - health.queued_entries
        assert health.submitted == n
        wait_for(lambda: sum(drops) >= refused, what="the drops reported")
        assert sum(drops) == refused  # what the sinks saw adds up exactly ...
        assert len(drops) < 100  # ... in a few coalesced events, not one per drop
    finally:
        engine.close(0.5)
