"""Caller-thread cost of ``logger.info("x %s", i)``: IngressHandler vs the stdlib QueueHandler.

Both handlers sit alone on their own non-propagating logger, in the same
process and the same run. The QueueHandler feeds a ``queue.Queue`` drained by
a ``QueueListener`` (into a handler that does nothing), the IngressHandler the
real delivery engine, whose workers append every entry to a local
session-ingress server running in a child process (so the server's CPU is not
in this process). Cost is ``time.thread_time()`` of the logging thread only,
per call; wall time is printed for reference. Rounds alternate (queue,
ingress, queue, ...) so drift in machine load hits both, and between rounds
the engine is flushed so every round starts from an empty queue. The median
round of each is reported.

    .venv/bin/python benchmarks/bench_handler.py [--records 20000] [--rounds 7]

Target: ingress / queue <= 1.2.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import queue
import statistics
import time
from collections.abc import Callable

from _child_server import ChildServer

from ingress_logging import IngressHandler

TARGET_RATIO = 1.2


class _Discard(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        return None


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers[:] = [handler]
    return logger


def _round(logger: logging.Logger, n: int) -> tuple[float, float]:
    info = logger.info
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for i in range(n):
        info("x %s", i)
    return (time.thread_time() - cpu0) / n, (time.perf_counter() - wall0) / n


def run(records: int, rounds: int, report: Callable[[str], None] = print) -> float:
    server = ChildServer()
    listener: logging.handlers.QueueListener | None = None
    ingress: IngressHandler | None = None
    try:
        base, token = server.base_url, server.token
        q: queue.Queue[logging.LogRecord] = queue.Queue()
        listener = logging.handlers.QueueListener(q, _Discard())
        listener.start()
        stdlib_logger = _logger("bench.queue_handler", logging.handlers.QueueHandler(q))
        ingress = IngressHandler(
            token=token,
            base_api_url=base,
            session_id="bench-handler",
            max_queue_entries=records * 2,
            max_queue_bytes=records * 4096,
            flush_timeout=300,
        )
        ingress_logger = _logger("bench.ingress_handler", ingress)
        engine = ingress.engine

        def settle() -> None:
            result = engine.flush(300)
            if not result:
                raise RuntimeError(f"engine flush did not deliver everything: {result}")
            while q.unfinished_tasks:  # the listener calls task_done per record
                time.sleep(0.001)

        _round(stdlib_logger, min(1000, records))  # warm both paths up
        _round(ingress_logger, min(1000, records))
        settle()
        stdlib_cpu: list[float] = []
        stdlib_wall: list[float] = []
        ours_cpu: list[float] = []
        ours_wall: list[float] = []
        for _ in range(rounds):
            cpu, wall = _round(stdlib_logger, records)
            stdlib_cpu.append(cpu)
            stdlib_wall.append(wall)
            settle()
            cpu, wall = _round(ingress_logger, records)
            ours_cpu.append(cpu)
            ours_wall.append(wall)
            settle()
        stats = engine.stats()
        q_cpu, i_cpu = statistics.median(stdlib_cpu), statistics.median(ours_cpu)
        ratio = i_cpu / q_cpu
        report(f"records per round: {records}, rounds: {rounds} (median shown)")
        report(
            f"QueueHandler   : {q_cpu * 1e6:7.2f} us CPU per call "
            f"({statistics.median(stdlib_wall) * 1e6:7.2f} us wall)"
        )
        report(
            f"IngressHandler : {i_cpu * 1e6:7.2f} us CPU per call "
            f"({statistics.median(ours_wall) * 1e6:7.2f} us wall)"
        )
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
        report(f"ratio ingress/queue: {ratio:6.3f}  (target <= {TARGET_RATIO}: {verdict})")
        report(
            f"engine: submitted={stats.submitted} delivered={stats.delivered} "
            f"dropped={stats.dropped} failed={stats.failed}"
        )
        return ratio
    finally:
        if listener is not None:
            listener.stop()
        if ingress is not None:
            ingress.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    run(args.records, args.rounds)


if __name__ == "__main__":
    main()
