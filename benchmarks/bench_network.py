"""Delivery at network speed, default engine settings, ratios from one run.

    .venv/bin/python benchmarks/bench_network.py            # everything
    .venv/bin/python benchmarks/bench_network.py --quick    # smaller counts
    .venv/bin/python benchmarks/bench_network.py --only one,burst,cpu,handler

The local server and a ``DelayProxy`` (a real round trip: bytes delayed
rtt/2 each way, pipelined requests not serialised) run in a *child process*,
so this process's CPU clock counts the client alone.

1. one: one session across a 50 ms round trip; entries per round trip
   (target >= 8).
2. burst: 32 sessions, submitted at once after the engine idled 1 s, 50 ms
   round trip; entries per round trip (target >= 25).
3. cpu: client CPU per delivered ~600-byte entry on loopback (no proxy):
   engine at 1 and 64 sessions against a bare ``httpx.Client.put`` loop
   (target <= 1.0x at both); raw ``http.client`` printed beside as the floor.
4. handler: caller-thread cost of ``logger.info`` against the stdlib
   ``QueueHandler`` (target <= 1.2x; ``bench_handler.run``).
5. limits: the adaptive limit under the default cap (``max_concurrency=64``)
   and under caps 1, 2, 4, 8 (1-4 pin it: it starts at 8); 64 sessions on
   loopback (CPU per entry, entries per 50 ms) and 32 sessions across the
   50 ms round trip (entries per RTT), at ``pipeline_window`` 16 and 1; the
   limit and the threads at the end.
6. window: the client alone, ``SessionIngressClient.append_many`` of one
   session at several window sizes across the 50 ms round trip (entries per
   RTT), and its CPU per entry on loopback - what the default window is
   chosen from.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

from bench_delivery import TOKEN, alt_http_client, bare_httpx_loop, cpu, entry

from ingress_logging import SessionIngressClient
from ingress_logging.delivery import DeliveryEngine

RTT = 0.05

_SERVER = """
import sys
from ingress_logging.server import run_server
from ingress_logging.testing_proxy import DelayProxy
with run_server(token="bench-token") as srv, DelayProxy(srv.base_url, rtt=float(sys.argv[1])) as p:
    print(srv.base_url, p.base_url, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def server(rtt: float) -> Iterator[tuple[str, str]]:
    """(direct base URL, base URL through a proxy adding ``rtt``), in a child process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(rtt)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        direct, delayed = proc.stdout.readline().split()
        yield direct, delayed
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def deliver(engine: DeliveryEngine, sessions: int, n: int, tag: str) -> float:
    """Submit n entries round-robin over sessions, flush; wall seconds."""
    before = engine.stats().delivered
    t0 = time.perf_counter()
    for i in range(n):
        engine.submit(f"{tag}-{i % sessions}", entry(i))
    result = engine.flush(900)
    wall = time.perf_counter() - t0
    assert result, result
    delivered = engine.stats().delivered - before
    assert delivered == n, (delivered, n)
    return wall


def bench_one(n: int) -> None:
    print(f"\n== one session across a {RTT * 1000:g} ms round trip ({n} entries, defaults)")
    with server(RTT) as (_, delayed):
        engine = DeliveryEngine(base_api_url=delayed, token=TOKEN)
        deliver(engine, 1, 5, f"warm{uuid.uuid4().hex[:6]}")
        wall = deliver(engine, 1, n, f"one{uuid.uuid4().hex[:6]}")
        engine.close(5)
    per_rtt = n / wall * RTT
    print(f"  {n} entries in {wall:.2f} s = {n / wall:.1f}/s = {per_rtt:.1f} entries per RTT")
    print(f"  ratio to target 8 per RTT: {per_rtt / 8:.2f}x")


def bench_burst(per_session: int, sessions: int = 32) -> None:
    n = per_session * sessions
    print(
        f"\n== {sessions} sessions x {per_session} after the engine idled 1 s, "
        f"{RTT * 1000:g} ms round trip (defaults)"
    )
    with server(RTT) as (_, delayed):
        engine = DeliveryEngine(base_api_url=delayed, token=TOKEN)
        deliver(engine, 1, 5, f"warm{uuid.uuid4().hex[:6]}")
        time.sleep(1.0)  # the engine idles (its workers park or exit)
        wall = deliver(engine, sessions, n, f"burst{uuid.uuid4().hex[:6]}")
        engine.close(5)
    per_rtt = n / wall * RTT
    print(f"  {n} entries in {wall:.2f} s = {n / wall:.1f}/s = {per_rtt:.1f} entries per RTT")
    print(f"  ratio to target 25 per RTT: {per_rtt / 25:.2f}x")


def bench_cpu(n: int, rounds: int = 3) -> None:
    print(
        f"\n== client CPU per delivered entry on loopback ({n} entries of ~600 B, "
        f"median of {rounds} interleaved rounds, defaults)"
    )
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in ("hc", "bare", "one", "many")}
    with server(0.0) as (direct, _):
        engine = DeliveryEngine(base_api_url=direct, token=TOKEN)
        bare_httpx_loop(direct, 200)
        alt_http_client(direct, 200)
        deliver(engine, 1, 200, "warm")
        for r in range(rounds):
            runs["hc"].append(cpu(lambda: alt_http_client(direct, n)))
            runs["bare"].append(cpu(lambda: bare_httpx_loop(direct, n)))
            runs["one"].append(cpu(lambda r=r: deliver(engine, 1, n, f"c1r{r}")))
            runs["many"].append(cpu(lambda r=r: deliver(engine, 64, n, f"c64r{r}")))
        engine.close(5)
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    us = 1e6 / n
    names = {
        "hc": "raw http.client loop (floor)",
        "bare": "bare httpx.Client.put loop",
        "one": "engine, 1 session",
        "many": "engine, 64 sessions",
    }
    for key, name in names.items():
        c, w = med[key]
        lo = min(c for c, _ in runs[key]) * us
        hi = max(c for c, _ in runs[key]) * us
        print(f"  {name:30s}: {c * us:5.0f} us CPU/entry ({lo:.0f}-{hi:.0f})  ({n / w:5.0f}/s)")
    bare = med["bare"][0]
    for key in ("one", "many"):
        c = med[key][0]
        print(
            f"  ratio {names[key]:20s} / bare httpx: {c / bare:5.2f}x (target <= 1.0x);"
            f" / http.client: {c / med['hc'][0]:5.2f}x"
        )


def bench_limits(n: int, rounds: int = 3) -> None:
    print(f"\n== adaptive limit vs fixed max_concurrency (median of {rounds} interleaved rounds)")
    for rtt, sessions in ((0.0, 64), (RTT, 32)):
        for window in (16, 1):
            count = n if rtt == 0 else n // 4
            with server(rtt) as (direct, delayed):
                url = direct if rtt == 0 else delayed
                engines = {
                    cap: DeliveryEngine(
                        base_api_url=url, token=TOKEN, max_concurrency=cap, pipeline_window=window
                    )
                    for cap in (1, 2, 4, 8, 64)
                }
                for cap, engine in engines.items():
                    deliver(engine, sessions, count, f"warm{cap}")
                runs: dict[int, list[tuple[float, float]]] = {cap: [] for cap in engines}
                for _ in range(rounds):
                    for cap, engine in engines.items():
                        tag = f"l{cap}{uuid.uuid4().hex[:6]}"
                        job = functools.partial(deliver, engine, sessions, count, tag)
                        runs[cap].append(cpu(job))
                for cap, engine in engines.items():
                    c, w = sorted(runs[cap])[rounds // 2]
                    health = engine.stats()
                    name = f"max_concurrency {cap}" + (" (default)" if cap == 64 else "")
                    print(
                        f"  rtt {rtt * 1000:3g} ms, {sessions} sessions, window {window:2d}, "
                        f"{name:17s}: {c / count * 1e6:5.0f} us CPU/entry, "
                        f"{count / w * RTT:6.1f} entries per {RTT * 1000:g} ms "
                        f"(limit {health.concurrency_limit}, threads {health.workers})"
                    )
                    engine.close(5)


def _client_batch(client: SessionIngressClient, sid: str, n: int, window: int) -> None:
    batch = [dict(entry(i), uuid=str(uuid.uuid4())) for i in range(n)]
    results = client.append_many(sid, batch, window=window)
    assert all(r.ok for r in results), results


def bench_window(n: int, windows: tuple[int, ...] = (1, 2, 4, 5, 8, 16, 32)) -> None:
    print(f"\n== append_many, one session, {n} entries, by window size")
    with server(RTT) as (direct, delayed):
        with SessionIngressClient(TOKEN, delayed) as client:
            _client_batch(client, "warm", 5, 1)
            for window in windows:
                count = n if window > 1 else max(20, n // 10)
                _, wall = cpu(lambda w=window, c=count: _client_batch(client, f"w{w}", c, w))
                per_rtt = count / wall * RTT
                print(f"  window {window:2d}: {per_rtt:6.1f} entries per {RTT * 1000:g} ms RTT")
        with SessionIngressClient(TOKEN, direct) as client:
            _client_batch(client, "warm", 50, 8)
            bare_c, _ = cpu(lambda: bare_httpx_loop(direct, n))
            for window in (1, 8):
                c, wall = cpu(lambda w=window: _client_batch(client, f"l{w}", n, w))
                print(
                    f"  loopback, window {window}: {c / n * 1e6:4.0f} us CPU/entry"
                    f" = {c / bare_c:4.2f}x bare httpx ({bare_c / n * 1e6:.0f} us)"
                )


def main() -> None:
    logging.getLogger("ingress_logging").addHandler(logging.NullHandler())
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller counts")
    p.add_argument("--only", default="one,burst,cpu,limits,handler,window")
    args = p.parse_args()
    only = set(args.only.split(","))
    q = args.quick
    if "one" in only:
        bench_one(100 if q else 400)
    if "burst" in only:
        bench_burst(5 if q else 20)
    if "cpu" in only:
        bench_cpu(500 if q else 2000)
    if "limits" in only:
        bench_limits(500 if q else 2000)
    if "window" in only:
        bench_window(200 if q else 1000)
    if "handler" in only:
        from bench_handler import run

        print("\n== caller-thread cost of logger.info (bench_handler)")
        run(5000 if q else 20000, 3 if q else 7)


if __name__ == "__main__":
    main()
