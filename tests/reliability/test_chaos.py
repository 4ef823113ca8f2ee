"""Chaos: many entries, many sessions, many threads, every fault, one restart.

``RELIABILITY_CHAOS_N`` entries (default 20,000) over 50 sessions from 8
threads go through one ``DeliveryEngine`` (default retry budget on) into the
local server (file database), while a chaos thread keeps injecting: a
standing 3 % share of 503s and, once per 200 requests, a burst of 5-20 of
one kind: 429 with ``Retry-After``, lost replies after commit (real TCP
drops), 500s, 500s after commit, or a 50 ms latency spike; and - once
half the entries are delivered - a server restart. Afterwards every session
on the server holds exactly its submitted entries, in submission order, each
once, chained by ``parentUuid``; the engine counts all of them delivered.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingress_logging import RetryPolicy
from ingress_logging.delivery import DeliveryEngine
from ingress_logging.server import IngressServer

N = int(os.environ.get("RELIABILITY_CHAOS_N", "20000"))
SESSIONS = 50
THREADS = 8
KINDS = ("429", "drop", "500", "error_after_commit", "latency")


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~30 s here; room for a slower CI machine
def test_chaos_every_session_exact_in_order_once(
    ingress_server_factory: Callable[..., IngressServer], token: str, tmp_path: Path
) -> None:
    server = ingress_server_factory(token=token, db=str(tmp_path / "chaos.db"))
    server.faults.fail_share(0.03, status=503, seed=7)
    engine = DeliveryEngine(
        base_api_url=server.base_url,
        token=token,
        retry_policy=RetryPolicy(
            max_attempts=1000, base_delay=0.001, max_delay=0.05, retry_after_cap=0.05
        ),
        max_queue_entries=N + 1,
        max_queue_bytes=1 << 30,
        max_concurrency=8,
        timeout=10,
    )
    sids = [f"chaos-{k:02d}" for k in range(SESSIONS)]
    locks = {sid: threading.Lock() for sid in sids}
    counts: dict[str, int] = dict.fromkeys(sids, 0)
    refused = 0
    done = threading.Event()
    injected: collections.Counter[str] = collections.Counter()
    expired = 0  # bursts cut short after 0.3 s

    def submitter(t: int) -> None:
        nonlocal refused
        rng = random.Random(t)
        for _ in range(N // THREADS + (t < N % THREADS)):
            sid = sids[rng.randrange(SESSIONS)]
            with locks[sid]:  # the per-session number *is* the submission order
                k = counts[sid]
                if engine.submit(sid, {"type": "user", "k": k, "t": t}):
                    counts[sid] = k + 1
                else:
                    refused += 1

    def chaos() -> None:
        """Inject faults until everything is delivered; restart at half delivered."""
        rng = random.Random(99)
        restarted = False
        nonlocal expired
        last_burst = 0
        bursts = 0
        burst_at = 0.0
        while not done.is_set():
            if not restarted and engine.stats().delivered >= N // 2:
                server.restart()
                injected["restart"] += 1
                restarted = True
            # Scripted faults hit whatever request comes next, so pace them by
            # traffic: one burst per 200 requests at most, once the last one is
            # used up. And a burst lives 0.3 s at most, like a real server's bad
            # moment: else an engine whose retry budget closed (its probes, one
            # a second, are then nearly all the traffic) would spend a second
            # per left-over fault - a test artefact, not a server.
            seen = len(server.requests)
            if server.faults.pending() and time.monotonic() - burst_at > 0.3:
                server.faults.reset()  # drops the rest of the burst ...
                server.faults.fail_share(0.03, status=503, seed=bursts)  # ... keeps the 3 %
                expired += 1
            if server.faults.pending() or seen - last_burst < 200:
                done.wait(0.02)
                continue
            last_burst = seen
            burst_at = time.monotonic()
            kind = KINDS[bursts % len(KINDS)]  # every kind in turn
            bursts += 1
            n = rng.randint(5, 20)
            if kind == "429":
                server.faults.rate_limit_next(n, retry_after=0.01)
            elif kind == "drop":
                server.faults.drop_after_commit_next(n)
            elif kind == "500":
                server.faults.fail_next(n, status=500)
            elif kind == "error_after_commit":
                server.faults.error_after_commit_next(n)
            else:
                server.faults.latency = 0.02
                done.wait(0.05)
                server.faults.latency = 0.0
                n = 1
            injected[kind] += n

    started = time.monotonic()
    chaos_thread = threading.Thread(target=chaos)
    chaos_thread.start()
    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        result = engine.flush(300)
    finally:
        done.set()
        chaos_thread.join()
    elapsed = time.monotonic() - started
    health = engine.stats()
    engine.close(5)

    stored = {sid: server.entries(sid) for sid in sids}
    total = sum(len(v) for v in stored.values())
    by_fault = collections.Counter(r.fault for r in server.requests if r.fault)
    print(
        f"\nchaos: {N} entries, {SESSIONS} sessions, {THREADS} threads in {elapsed:.1f}s: "
        f"submitted {health.submitted}, delivered {health.delivered}, retried "
        f"{health.retried}, failed {health.failed}, dropped {health.dropped}; "
        f"stored {total}; {len(server.requests)} requests; faults scheduled "
        f"{dict(injected)}; faults hit {dict(by_fault)} ({expired} bursts cut at 0.3 s); "
        f"budget {health.retry_budget}"
    )
    assert refused == 0
    assert (result.pending, result.failed, result.dropped) == (0, 0, 0), result
    assert health.delivered == health.submitted == N
    assert injected["restart"] == 1
    # Every kind of fault really happened (the lost reply: a dropped connection).
    for name in ("share_503", "status_429", "drop_after_commit", "status_500"):
        assert by_fault[name] > 0, name
    assert by_fault["error_after_commit"] > 0
    assert injected["latency"] > 0
    for sid in sids:
        entries = stored[sid]
        assert [e["k"] for e in entries] == list(range(counts[sid])), sid
        uuids = [e["uuid"] for e in entries]
        assert len(set(uuids)) == len(uuids), sid
        assert [e["parentUuid"] for e in entries[1:]] == uuids[:-1], sid
    assert total == N
