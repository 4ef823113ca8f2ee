"""Concurrency that adapts: slow sessions hold back nobody, a round trip opens
the limit, a CPU-bound server keeps it small (``delivery/_limit.py``,
docs/delivery.md).

Against the real local server over real sockets; the slow server is a
``DelayProxy`` whose round trip outlasts the test, in front of that server,
for the sessions named ``slow-*`` only (a plugin routes them there).
"""

from __future__ import annotations

from typing import Any

import pytest

from ingress_logging import hookimpl
from ingress_logging.delivery._limit import (
    INITIAL_LIMIT,
    OVERDUE_INITIAL,
    OVERDUE_MAX,
    OVERDUE_MIN,
    ConcurrencyLimit,
)
from ingress_logging.delivery._workforce import Workforce
from ingress_logging.plugins import PluginHost, new_plugin_manager


class _SlowRoute:
    """Sessions named ``slow-*`` go through ``slow_base``; the rest pass."""

    def __init__(self, slow_base: str) -> None:
        self.slow_base = slow_base

    @hookimpl
    def ingress_session_url(self, session_id: str) -> str | None:
        if session_id.startswith("slow-"):
            return f"{self.slow_base}/v1/session_ingress/session/{session_id}"
        return None


def test_slow_sessions_never_hold_back_an_unrelated_session(
    ingress_server: Any, delay_proxy_factory: Any, make_engine: Any, wait_for: Any
) -> None:
    """Default settings: more slow sessions than the engine starts with (8) are
    in flight, and an unrelated session's entry is still delivered while
    every one of them is (their replies cannot come back during the test)."""
    slow = delay_proxy_factory(ingress_server, rtt=600.0)
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(_SlowRoute(slow.base_url))
    host = PluginHost(pm, token=ingress_server.token, base_api_url=ingress_server.base_url)
    engine = make_engine(host=host)
    n_slow = INITIAL_LIMIT + 2
    for k in range(n_slow):
        assert engine.submit(f"slow-{k}", {"type": "system", "content": "s"})
    wait_for(lambda: slow.connections >= INITIAL_LIMIT, what="the slow requests in flight")
    assert engine.submit("fast", {"type": "system", "content": "f"})
    wait_for(
        lambda: engine.stats().sessions["fast"].delivered == 1,
        what="the unrelated entry delivered",
    )
    health = engine.stats()
    assert [e["content"] for e in ingress_server.entries("fast")] == ["f"]
    for k in range(n_slow):
        assert health.sessions[f"slow-{k}"].delivered == 0  # still in flight
        assert ingress_server.entries(f"slow-{k}") == []
    assert health.in_flight == n_slow
    assert health.workers <= 64  # the default cap


def test_a_round_trip_opens_the_limit_beyond_its_start(
    ingress_server: Any, delay_proxy_factory: Any, make_engine: Any, wait_for: Any
) -> None:
    """32 sessions with entries waiting, across a 200 ms round trip: the
    latency does not grow with the requests in flight, so the limit grows."""
    proxy = delay_proxy_factory(ingress_server, rtt=0.2)
    engine = make_engine(base_api_url=proxy.base_url, pipeline_window=1)
    assert engine.stats().concurrency_limit == INITIAL_LIMIT
    for i in range(10):
        for k in range(32):
            assert engine.submit(f"r{k}", {"type": "system", "content": str(i)})
    wait_for(
        lambda: engine.stats().concurrency_limit > INITIAL_LIMIT,
        what="the limit grows past its start",
    )
    assert engine.flush(30)
    assert all(len(ingress_server.entries(f"r{k}")) == 10 for k in range(32))


# -- the limit itself (pure: samples in, limit out) ----------------------------------


def test_the_limit_climbs_to_the_cap_while_latency_stays_flat() -> None:
    limit = ConcurrencyLimit(cap=64)
    now = 0.0
    for _ in range(200):
        now += 0.05
        limit.sample(0.05, now, waiting=True)
    assert limit.limit == 64


def test_the_limit_does_not_grow_when_nobody_waits_for_a_worker() -> None:
    limit = ConcurrencyLimit(cap=64)
    now = 0.0
    for _ in range(200):
        now += 0.05
        limit.sample(0.05, now, waiting=False)
    assert limit.limit == INITIAL_LIMIT


def test_the_limit_shrinks_when_latency_grows_with_the_requests_in_flight() -> None:
    """A CPU-bound server: latency proportional to the requests in flight."""
    limit = ConcurrencyLimit(cap=64)
    limit.sample(0.0002, 0.0, waiting=False)  # alone: the latency without a queue
    now = 0.0
    for _ in range(500):
        now += 0.001
        limit.sample(0.0002 * limit.limit, now, waiting=True)
    assert limit.limit < INITIAL_LIMIT


def test_a_slow_reply_says_nothing_about_the_limit() -> None:
    limit = ConcurrencyLimit(cap=64)
    limit.sample(0.01, 0.0, waiting=True)
    before = limit.limit
    limit.sample(10.0, 1.0, waiting=True)  # overdue: a slow server, not a queue
    assert limit.limit == before


@pytest.mark.parametrize(
    ("latencies", "expected"),
    [([], OVERDUE_INITIAL), ([0.0001], OVERDUE_MIN), ([60.0], OVERDUE_MAX), ([0.1], 0.4)],
)
def test_a_step_is_overdue_after_a_few_usual_latencies_within_bounds(
    latencies: list[float], expected: float
) -> None:
    limit = ConcurrencyLimit(cap=8)
    for k, latency in enumerate(latencies):
        limit.sample(latency, float(k), waiting=False)
    assert limit.overdue_after == pytest.approx(expected)


def test_an_idle_worker_waits_for_the_next_step_to_become_overdue_not_a_past_one() -> None:
    """With one step overdue and one fresh, the room is still 0 (limit 1): the
    idle worker must sleep until the fresh one is overdue, not spin."""
    crew = Workforce(max_workers=8)
    crew.limit.limit = 1
    after = crew.limit.overdue_after
    old, fresh = object(), object()
    crew.begin(old, 0.0)  # type: ignore[arg-type]
    crew.begin(fresh, 10.0)  # type: ignore[arg-type]
    now = 10.0 + after / 2
    assert crew.room(now) == 0
    assert crew.idle_timeout(now, None, ready=True) == pytest.approx(after / 2)
    assert crew.idle_timeout(now, None, ready=False) is None
    assert crew.idle_timeout(now, now + 0.01, ready=True) == pytest.approx(0.01)
