"""Caller-thread cost of the durable spool: ``submit`` and ``logger.info``, spool on vs off.

With ``spool_dir`` the engine builds the entry, assigns ``uuid`` and
``parentUuid``, serialises it and commits one SQLite row on the caller's
thread before ``submit()`` returns; without it the caller only queues. This
measures what that costs the application, in the same run:

* ``time.thread_time()`` of the calling thread (CPU the caller pays; the
  delivery workers' CPU is not in it) and wall time per call;
* through ``engine.submit(session_id, dict)`` and through
  ``logger.info(...)`` with an ``IngressHandler`` on that engine.

The server (a child process, 20 ms latency so the workers mostly wait) and
the caps (larger than the run, so nothing is dropped) are the same for both.
Rounds alternate off/on; the median round of each is reported.

    .venv/bin/python benchmarks/bench_spool.py [--entries 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from ingress_logging import IngressHandler
from ingress_logging.delivery import DeliveryEngine

SESSIONS = 8


def _serve(conn: Connection) -> None:
    from ingress_logging.server import run_server

    with run_server() as srv:
        srv.faults.latency = 0.02
        conn.send((srv.base_url, srv.token))
        conn.recv()


def _entry(i: int) -> dict[str, object]:
    return {
        "type": "assistant",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "x" * 400}]},
        "cwd": "/home/user/project",
        "version": "1.0.0",
        "gitBranch": "main",
        "i": i,
    }


def _engine(base: str, token: str, spool_dir: Path | None, n: int) -> DeliveryEngine:
    return DeliveryEngine(
        base_api_url=base,
        token=token,
        spool_dir=spool_dir,
        max_queue_entries=n + 10,
        max_queue_bytes=1 << 30,
        spool_max_bytes=1 << 30,
        close_timeout=0.5,
    )


def _round_submit(base: str, token: str, spool_dir: Path | None, n: int) -> tuple[float, float]:
    engine = _engine(base, token, spool_dir, n)
    entries = [_entry(i) for i in range(n)]
    engine.submit("warm-up", _entry(-1))
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for i, entry in enumerate(entries):
        engine.submit(f"bench-{i % SESSIONS}", entry)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    engine.close(0.5)
    return cpu / n, wall / n


def _round_log(base: str, token: str, spool_dir: Path | None, n: int) -> tuple[float, float]:
    engine = _engine(base, token, spool_dir, n)
    log = logging.getLogger(f"bench.spool.{id(engine)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = IngressHandler(session_id="bench-log", engine=engine)
    log.addHandler(handler)
    log.info("warm-up")
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for i in range(n):
        log.info("request %d handled in %.1f ms", i, 12.5)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    log.removeHandler(handler)
    engine.close(0.5)
    return cpu / n, wall / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    base, token = parent.recv()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for kind, fn in (("submit", _round_submit), ("logger.info", _round_log)):
                    for mode in ("off", "on"):
                        spool = Path(tmp) / f"{kind}-{r}" if mode == "on" else None
                        results.setdefault((kind, mode), []).append(
                            fn(base, token, spool, args.entries)
                        )
    finally:
        parent.send("stop")
        server.join(5)
    print(f"spool caller-thread cost, {args.entries} calls x {args.rounds} rounds (median round)")
    for kind in ("submit", "logger.info"):
        off = results[(kind, "off")]
        on = results[(kind, "on")]
        cpu_off = statistics.median(c for c, _ in off)
        cpu_on = statistics.median(c for c, _ in on)
        wall_off = statistics.median(w for _, w in off)
        wall_on = statistics.median(w for _, w in on)
        print(
            f"  {kind:<12} spool off {cpu_off * 1e6:6.1f} us CPU / {wall_off * 1e6:6.1f} us wall;"
            f" spool on {cpu_on * 1e6:6.1f} us CPU / {wall_on * 1e6:6.1f} us wall;"
            f" ratio {cpu_on / cpu_off:.1f}x CPU, {wall_on / wall_off:.1f}x wall"
        )


if __name__ == "__main__":
    main()
