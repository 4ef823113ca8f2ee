"""Per-session order and cross-session independence, for threads and for tasks.

Order is asserted from what the server stored and when requests arrived
(``RequestRecord.t``), never from sleeps in the test.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from typing import Any

import pytest

from ingress_logging import AsyncSessionIngressClient, RetryPolicy, SessionIngressClient
from ingress_logging.client._sync import SessionTurns
from ingress_logging.plugins import new_plugin_manager


def entry(n: int) -> dict[str, Any]:
    return {"type": "user", "uuid": str(uuid.uuid4()), "n": n}


def kwargs(srv: Any, **extra: Any) -> dict[str, Any]:
    return {
        "token": srv.token,
        "base_api_url": srv.base_url,
        "plugins": new_plugin_manager(load_entrypoints=False),
        "diagnostics": lambda *_: None,
        **extra,
    }


def tickets_taken(turns: SessionTurns, session_id: str) -> int:
    """Callers in the session's line since it was last idle (running, queued or gone)."""
    with turns._lock:
        turn = turns._turns.get(session_id)
        return 0 if turn is None else turn.next_ticket


LATENCY = 0.08


def test_threads_append_one_at_a_time_in_call_order(ingress_server, wait_for):
    ingress_server.faults.latency = LATENCY
    entries = [entry(n) for n in range(6)]
    results: dict[int, bool] = {}
    with SessionIngressClient(**kwargs(ingress_server)) as client:
        threads = []
        # The test holds the session's first turn while the calls queue up, so the
        # line cannot go idle (and restart its numbering) between two calls however
        # the threads are scheduled; the calls then run in the order they queued.
        with client._turns.turn("s"):
            for n, e in enumerate(entries):

                def call(n: int = n, e: dict[str, Any] = e) -> None:
                    results[n] = client.append_session_log("s", e)

                thread = threading.Thread(target=call)
                thread.start()
                threads.append(thread)
                # the next call is made only once this one holds its place in line
                wait_for(
                    lambda n=n: tickets_taken(client._turns, "s") >= n + 2,
                    what="the next turn queued",
                )
            assert not results  # all six are waiting behind the test's turn
        for thread in threads:
            thread.join(10)
    assert results == dict.fromkeys(range(6), True)
    assert [e["n"] for e in ingress_server.entries("s")] == list(range(6))
    records = ingress_server.wait_for_requests(6)
    assert [r.status for r in records] == [201, 200, 200, 200, 200, 200]  # no 409: one in flight
    for a, b in itertools.pairwise(records):
        assert b.t - a.t >= LATENCY * 0.9  # the next request started after the previous ended


def test_tasks_append_one_at_a_time_in_call_order(ingress_server):
    ingress_server.faults.latency = LATENCY / 2
    entries = [entry(n) for n in range(8)]

    async def main() -> list[bool]:
        async with AsyncSessionIngressClient(**kwargs(ingress_server)) as client:
            return await asyncio.gather(*(client.append_session_log("s", e) for e in entries))

    assert asyncio.run(main()) == [True] * 8
    assert [e["n"] for e in ingress_server.entries("s")] == list(range(8))
    records = ingress_server.wait_for_requests(8)
    assert {r.status for r in records[1:]} == {200}
    for a, b in itertools.pairwise(records):
        assert b.t - a.t >= LATENCY / 2 * 0.9


#: Session "a" fails once and backs off this long: the window in which b must arrive.
BACKOFF = 0.6


def _backoff_scenario(srv: Any) -> None:
    srv.faults.fail_next(1, status=503, session_id="a")


def _assert_b_was_not_delayed(srv: Any) -> None:
    records = srv.wait_for_requests(3)
    a = [r for r in records if r.session_id == "a"]
    b = [r for r in records if r.session_id == "b"]
    assert [r.status for r in a] == [503, 201]
    assert [r.status for r in b] == [201]
    assert a[1].t - a[0].t >= BACKOFF * 0.9  # a really waited out its backoff
    # b arrived while a was still backing off (between a's two attempts), not after
    assert a[0].t < b[0].t < a[1].t


def test_a_thread_in_backoff_does_not_delay_another_session(ingress_server):
    _backoff_scenario(ingress_server)
    policy = RetryPolicy(base_delay=BACKOFF)
    with SessionIngressClient(**kwargs(ingress_server, retry_policy=policy)) as client:
        slow = threading.Thread(target=client.append_session_log, args=("a", entry(0)))
        slow.start()
        ingress_server.wait_for_requests(1)  # a has failed once and is backing off
        assert client.append_session_log("b", entry(1)) is True
        slow.join(10)
    _assert_b_was_not_delayed(ingress_server)


def test_a_task_in_backoff_does_not_delay_another_session(ingress_server):
    _backoff_scenario(ingress_server)
    policy = RetryPolicy(base_delay=BACKOFF)

    async def main() -> tuple[bool, bool]:
        async with AsyncSessionIngressClient(**kwargs(ingress_server, retry_policy=policy)) as c:
            slow = asyncio.ensure_future(c.append_session_log("a", entry(0)))
            while not ingress_server.requests:  # a's first PUT is done; no blocking wait
                await asyncio.sleep(0.001)
            fast = await c.append_session_log("b", entry(1))
            return await slow, fast

    assert asyncio.run(main()) == (True, True)
    _assert_b_was_not_delayed(ingress_server)


def test_idle_sessions_are_forgotten(ingress_server):
    with SessionIngressClient(**kwargs(ingress_server)) as client:
        for n in range(5):
            assert client.append_session_log(f"s{n}", entry(n))
        assert len(client._turns) == 0


def test_a_failing_call_releases_its_turn(ingress_server):
    with SessionIngressClient(**kwargs(ingress_server)) as client:
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            client.append_session_log("s", {"bad": object()})
        assert len(client._turns) == 0
        assert client.append_session_log("s", entry(0)) is True


def test_async_client_survives_several_asyncio_runs(ingress_server):
    # Pooled connections belong to one loop; the client must not reuse them
    # from the next asyncio.run (that fails with "Event loop is closed").
    client = AsyncSessionIngressClient(**kwargs(ingress_server))
    first, second = entry(0), entry(1)
    assert asyncio.run(client.append_session_log("s", first)) is True
    assert asyncio.run(client.append_session_log("s", second)) is True
    logs = asyncio.run(client.get_session_logs("s"))
    asyncio.run(client.aclose())
    assert logs == [first, second]
    assert ingress_server.wait_for_requests(3)[1].last_uuid == first["uuid"]


def test_a_waiter_that_gives_up_does_not_stall_the_line(wait_for):
    turns = SessionTurns()
    entered = threading.Event()
    with turns.turn("s"):
        # a second caller takes ticket 1 and is interrupted before its turn
        with turns._lock:
            turn = turns._turns["s"]
            turn.next_ticket += 1
            turn.users += 1
            turns._leave("s", turn, 1)

        def third() -> None:
            with turns.turn("s"):
                entered.set()

        waiter = threading.Thread(target=third)
        waiter.start()
        wait_for(lambda: tickets_taken(turns, "s") == 3, what="three tickets taken")
        assert not entered.is_set()  # still behind the holder
    assert entered.wait(5)  # ticket 1 was skipped, ticket 2 got in
    waiter.join(5)
    assert len(turns) == 0
