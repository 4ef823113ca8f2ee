"""Memory of many distinct sessions: one entry each, as an app with a session per job.

    .venv/bin/python benchmarks/bench_idle_sessions.py                 # 200,000 sessions
    .venv/bin/python benchmarks/bench_idle_sessions.py --sessions 20000

The local server runs in a child process (its store is not this process's
memory). Every session gets one ~100-byte entry; after each batch the engine
is flushed. Printed: this process's RSS growth, the Python heap still held
after a full collection (``--tracemalloc``, started after the warm-up), and how
many sessions the engine's state, its evicted-head LRU and the client's head
map hold. Runs against an engine without ``max_idle_sessions`` too (older
code: every session is kept), so the same script compares before and after.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import sys
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _child_server import ChildServer

from ingress_logging.delivery import DeliveryEngine


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(n: int, batch: int, trace: bool) -> None:
    server = ChildServer()
    try:
        kwargs: dict[str, Any] = {"base_api_url": server.base_url, "token": server.token}
        bounded = "max_idle_sessions" in inspect.signature(DeliveryEngine).parameters
        engine = DeliveryEngine(**kwargs)
        for i in range(200):  # warm-up: threads, connections, caches
            engine.submit(f"warm-{i}", {"type": "user", "message": "warm"})
        assert engine.flush(30)
        gc.collect()
        rss0 = rss_kib()
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            for k in range(start, min(n, start + batch)):
                engine.submit(f"job-{k:07d}", {"type": "user", "message": "x" * 100})
            result = engine.flush(60)
            assert result, result
        wall = time.perf_counter() - t0
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] if trace else 0
        tracemalloc.stop()
        rss1 = rss_kib()
        health = engine.stats()
        assert health.delivered == n + 200, health
        sched = engine._sched
        transport = getattr(engine._pool, "_transport", None)
        client_heads = len(transport.client._heads) if transport is not None else 0
        print(f"== {n:,} sessions, one entry each ({'bounded' if bounded else 'unbounded'} engine)")
        print(f"  wall                 : {wall:6.1f} s")
        print(f"  RSS growth           : {(rss1 - rss0) / 1024:6.1f} MiB")
        if trace:
            print(f"  Python heap held     : {held / 2**20:6.1f} MiB ({held / n:.0f} B/session)")
        print(f"  engine SessionStates : {len(sched._sessions):,}")
        heads = getattr(getattr(sched, "retention", None), "heads", ())
        print(f"  evicted heads kept   : {len(heads):,}")
        print(f"  client head map      : {client_heads:,}")
        print(f"  stats().sessions     : {len(health.sessions):,}")
        engine.close(10)
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=2_000)
    p.add_argument("--tracemalloc", action="store_true", help="heap figure (3x slower)")
    args = p.parse_args()
    run(args.sessions, args.batch, args.tracemalloc)


if __name__ == "__main__":
    main()
