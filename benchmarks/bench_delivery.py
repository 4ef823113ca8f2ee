"""Delivery engine benchmarks. Ratios are printed from one run.

    .venv/bin/python benchmarks/bench_delivery.py            # everything
    .venv/bin/python benchmarks/bench_delivery.py --quick    # smaller counts
    .venv/bin/python benchmarks/bench_delivery.py --only cpu,latency,down,alternatives

The local server runs in a *separate process*, so ``time.process_time()``
of this process is the client's CPU alone (all its threads).

1. cpu: client CPU per delivered 600-byte entry, engine at 1 and 64 sessions,
   against a bare ``httpx.Client.put`` loop on the same server in the same run
   (targets: <= 1.3x at 1 session, <= 1.0x at 64 sessions).
2. latency: 1 vs 32 sessions against the server with 50 ms added per request
   (target: 32 sessions >= 25x the entries/s of 1 session).
3. down: server down, 1,000,000 submits: tracemalloc peak vs the byte cap,
   drops counted exactly (returned False == health.dropped == reported).
4. alternatives: the I/O designs the engine's shape was chosen from
   (http.client, httpx sync, httpx async 64-way, threads with one shared
   ``httpx.Client`` vs one client per thread).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import json
import logging
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ingress_logging.client._fasthttp import HTTPClientTransport
from ingress_logging.delivery import DeliveryEngine
from ingress_logging.protocol import RetryPolicy

_SERVER = """
import sys
from ingress_logging.server import run_server
with run_server(token="bench-token") as srv:
    srv.faults.latency = float(sys.argv[1])
    print(srv.base_url, flush=True)
    sys.stdin.read()
"""

TOKEN = "bench-token"


@contextlib.contextmanager
def server(latency: float = 0.0) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def entry(i: int) -> dict[str, Any]:
    """About 600 bytes serialised, like the issue's measurements."""
    return {
        "type": "user",
        "message": {"role": "user", "content": f"entry {i} " + "x" * 380},
        "timestamp": "2026-01-01T00:00:00.000Z",
        "cwd": "/home/user/project",
        "version": "1.0.0",
        "userType": "external",
        "isSidechain": False,
    }


def session_url(base: str, sid: str) -> str:
    return f"{base}/v1/session_ingress/session/{sid}"


def cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of fn()."""
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


# -- 1. CPU per entry ------------------------------------------------------


def bare_httpx_loop(base: str, n: int, transport: httpx.BaseTransport | None = None) -> None:
    sid = f"bare-{uuid.uuid4().hex[:8]}"
    url = session_url(base, sid)
    last: str | None = None
    with httpx.Client(transport=transport) as client:
        for i in range(n):
            e = entry(i)
            e["uuid"] = str(uuid.uuid4())
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if last:
                headers["Last-Uuid"] = last
            r = client.put(url, json=e, headers=headers)
            assert r.status_code in (200, 201), r.status_code
            last = e["uuid"]


def engine_run(base: str, n: int, sessions: int, concurrency: int = 8) -> None:
    engine = DeliveryEngine(base_api_url=base, token=TOKEN, max_concurrency=concurrency)
    tag = uuid.uuid4().hex[:8]
    for i in range(n):
        engine.submit(f"e{tag}-{i % sessions}", entry(i))
    result = engine.flush(600)
    health = engine.stats()
    engine.close(5)
    assert result, result
    assert health.delivered == n, health.total


def bench_cpu(n: int, rounds: int = 3) -> None:
    print(
        f"\n== client CPU per delivered entry ({n} entries of ~600 B, server in another "
        f"process; median of {rounds} interleaved rounds)"
    )
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "one": [], "many": []}
    with server() as base:
        bare_httpx_loop(base, 200)  # warm-up: imports, connections, server caches
        engine_run(base, 200, 1)
        for _ in range(rounds):
            runs["bare"].append(cpu(lambda: bare_httpx_loop(base, n)))
            runs["one"].append(cpu(lambda: engine_run(base, n, 1)))
            runs["many"].append(cpu(lambda: engine_run(base, n, 64)))
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    spread = {
        k: f"{min(c for c, _ in v) / n * 1e6:.0f}-{max(c for c, _ in v) / n * 1e6:.0f}"
        for k, v in runs.items()
    }
    us = 1e6 / n
    (bare_c, bare_w), (one_c, one_w), (many_c, many_w) = med["bare"], med["one"], med["many"]
    rows = [
        ("bare httpx.Client.put loop", bare_c, bare_w, "bare"),
        ("engine, 1 session", one_c, one_w, "one"),
        ("engine, 64 sessions", many_c, many_w, "many"),
    ]
    for name, c, w, key in rows:
        print(f"  {name:27s}: {c * us:5.0f} us CPU/entry ({spread[key]})  ({n / w:5.0f}/s)")
    print(f"  ratio 1 session   / bare   : {one_c / bare_c:5.2f}x  (target <= 1.3x)")
    print(f"  ratio 64 sessions / bare   : {many_c / bare_c:5.2f}x  (target <= 1.0x)")


# -- 2. 50 ms latency ----------------------------------------------------------


def bench_latency(per_session_1: int, per_session_32: int) -> None:
    print("\n== throughput against a server answering in 50 ms")
    with server(0.05) as base:
        n1 = per_session_1
        _, w1 = cpu(lambda: engine_run(base, n1, 1, concurrency=32))
        n32 = 32 * per_session_32
        _, w32 = cpu(lambda: engine_run(base, n32, 32, concurrency=32))
    r1, r32 = n1 / w1, n32 / w32
    print(f"  1 session   : {n1:5d} entries in {w1:5.2f} s = {r1:7.1f} entries/s")
    print(f"  32 sessions : {n32:5d} entries in {w32:5.2f} s = {r32:7.1f} entries/s")
    print(f"  ratio       : {r32 / r1:5.1f}x  (target >= 25x; max_concurrency=32)")


# -- 3. server down ---------------------------------------------------------------


def bench_down(n: int) -> None:
    cap_bytes = 4 * 1024 * 1024
    print(f"\n== server down, {n:,} submits, max_queue_bytes={cap_bytes:,}, drop_newest")
    with server() as base:
        pass  # started and stopped: nothing listens on that port any more
    engine = DeliveryEngine(
        base_api_url=base,
        token=TOKEN,
        max_queue_entries=n,
        max_queue_bytes=cap_bytes,
        retry_policy=RetryPolicy(max_attempts=1000, base_delay=0.05, max_delay=0.5),
        close_timeout=1.0,
    )
    message = "m" * 100
    gc.collect()
    tracemalloc.start()
    base_mem = tracemalloc.get_traced_memory()[0]
    refused = 0
    t0 = time.perf_counter()
    for i in range(n):
        if not engine.submit(f"down-{i % 16}", {"type": "user", "message": message}):
            refused += 1
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base_mem
    tracemalloc.stop()
    health = engine.stats()
    engine._reporter.drain(5)
    reported = engine._reporter.reported_drops
    print(f"  submit: {wall / n * 1e6:.2f} us/call (tracemalloc on)")
    print(f"  queued at the end             : {health.queued_entries:,} entries")
    print(f"  peak traced memory above start: {peak:,} B = cap + {peak - cap_bytes:,} B")
    print(f"  queued_bytes (estimate)       : {health.queued_bytes:,} B")
    print(f"  refused by submit()           : {refused:,}")
    print(f"  health.dropped                : {health.dropped:,}  {health.dropped_by_reason}")
    print(f"  reported via diagnostics      : {reported:,}")
    exact = refused == health.dropped == reported and health.submitted == n
    print(f"  drops counted exactly         : {exact}")
    engine.close(1.0)


# -- 4. alternatives --------------------------------------------------------------


def alt_http_client(base: str, n: int) -> None:
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    sid = f"hc-{uuid.uuid4().hex[:8]}"
    path = f"/v1/session_ingress/session/{sid}"
    last = None
    for i in range(n):
        e = entry(i)
        e["uuid"] = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        if last:
            headers["Last-Uuid"] = last
        conn.request("PUT", path, body=json.dumps(e), headers=headers)
        resp = conn.getresponse()
        resp.read()
        last = e["uuid"]
    conn.close()


def alt_async(base: str, n: int, width: int) -> None:
    async def session(client: httpx.AsyncClient, sid: str, count: int) -> None:
        last = None
        for i in range(count):
            e = entry(i)
            e["uuid"] = str(uuid.uuid4())
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if last:
                headers["Last-Uuid"] = last
            await client.put(session_url(base, sid), json=e, headers=headers)
            last = e["uuid"]

    async def main() -> None:
        limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
        async with httpx.AsyncClient(limits=limits) as client:
            tag = uuid.uuid4().hex[:8]
            await asyncio.gather(
                *(session(client, f"as{tag}-{k}", n // width) for k in range(width))
            )

    asyncio.run(main())


def alt_threads(base: str, n: int, threads: int, shared: bool) -> None:
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    common = httpx.Client(limits=limits) if shared else None
    tag = uuid.uuid4().hex[:8]

    def run(k: int) -> None:
        client = common or httpx.Client()
        last = None
        for i in range(n // threads):
            e = entry(i)
            e["uuid"] = str(uuid.uuid4())
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if last:
                headers["Last-Uuid"] = last
            client.put(session_url(base, f"th{tag}-{k}"), json=e, headers=headers)
            last = e["uuid"]
        if common is None:
            client.close()

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if common is not None:
        common.close()


def bench_alternatives(n: int) -> None:
    print(f"\n== I/O alternatives: client CPU per PUT ({n} PUTs of ~600 B)")
    with server() as base:
        alt_http_client(base, 100)
        rows = [
            ("http.client, sequential", lambda: alt_http_client(base, n)),
            ("httpx.Client, sequential", lambda: bare_httpx_loop(base, n)),
            (
                "httpx.Client over http.client, seq.",
                lambda: bare_httpx_loop(base, n, HTTPClientTransport()),
            ),
            ("httpx.AsyncClient, 1 at a time", lambda: alt_async(base, n, 1)),
            ("httpx.AsyncClient, 64 concurrent", lambda: alt_async(base, n, 64)),
            ("8 threads, one shared httpx.Client", lambda: alt_threads(base, n, 8, True)),
            ("8 threads, one httpx.Client each", lambda: alt_threads(base, n, 8, False)),
            ("engine, 64 sessions, 8 workers", lambda: engine_run(base, n, 64)),
        ]
        for name, fn in rows:
            c, w = cpu(fn)
            print(f"  {name:36s}: {c / n * 1e6:7.0f} us CPU/PUT  ({n / w:6.0f}/s)")


def main() -> None:
    # Diagnostics (drops while the server is down...) would go to stderr via
    # logging's last resort; the benchmark prints its own counts.
    logging.getLogger("ingress_logging").addHandler(logging.NullHandler())
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts")
    p.add_argument("--only", default="cpu,latency,down,alternatives")
    p.add_argument("--down-n", type=int, default=None)
    args = p.parse_args()
    only = set(args.only.split(","))
    q = args.quick
    if "cpu" in only:
        bench_cpu(1000 if q else 3000)
    if "latency" in only:
        bench_latency(20 if q else 40, 10 if q else 20)
    if "down" in only:
        bench_down(args.down_n or (100_000 if q else 1_000_000))
    if "alternatives" in only:
        bench_alternatives(640 if q else 1920)


if __name__ == "__main__":
    main()
