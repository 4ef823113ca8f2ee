"""The endpoint is down for the whole run: the app never notices.

"Down" is the nasty kind: a socket that listens but never accepts, so every
request hangs in connect/read until its timeout (a refused connection would
fail fast and be far kinder). The app is a child process that logs through
``IngressHandler`` into its own ``DeliveryEngine``; it measures every
``logger.info`` call, samples the engine's queue and the traced memory, and
then simply returns, leaving the ``atexit`` close to the engine. Checked:

* no ``logger.info`` call blocks: a call that waited on the network would
  take the request timeout (60 s here). With ``drop_newest`` 99 % of calls
  take under 50 ms and the worst under 1 s; with ``block`` the wait is at
  least ``block_timeout`` and under ``block_timeout`` + 0.5 s. The slack is
  the scheduler, not the library: p99 is ~0.1 ms on a quiet machine but
  4.8-7.2 ms at load average 8 on 2 cores (tracemalloc on), and the worst
  call, a preemption, was seen at 155-342 ms there (block: 70-125 ms);
* the queue never exceeds its caps, and traced memory stays under the byte
  cap plus a small constant;
* drops are counted exactly: every record is delivered (none), dropped or
  still pending at exit, and the diagnostics report exactly the drops,
  including the queued entries abandoned at exit (the one request hanging
  in flight then is abandoned with the process, not reported as a drop);
* the process exits within its close deadline (1 s here, spent once) plus
  2 s, although requests are still hanging (a subprocess with a timeout).

Sizes: ``RELIABILITY_DOWN_RECORDS`` records with drop_newest (default 20,000);
250 records with block.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from ingress_logging.protocol import DEFAULT_WINDOW

RECORDS = int(os.environ.get("RELIABILITY_DOWN_RECORDS", "20000"))
CLOSE_TIMEOUT = 1.0
#: The engine's ``atexit`` close spends the deadline once; ``logging.shutdown``
#: after it (the handler's ``flush()`` and ``close()``) finds the engine closed
#: and waits no more (docs/guarantees.md), plus interpreter shutdown.
EXIT_BOUND = CLOSE_TIMEOUT + 2.0

APP = textwrap.dedent(
    """
    import json, logging, sys, time, tracemalloc
    from ingress_logging import IngressHandler
    from ingress_logging.delivery import DeliveryEngine
    from ingress_logging.plugins import PluginHost

    base, n, overflow, block_timeout, close_timeout = (
        sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    )
    MAX_ENTRIES, MAX_BYTES = 1000, 2 * 1024 * 1024

    def sink(level, event, data):
        if event == "delivery_dropped":  # one line per report, parsed by the test
            # One write per line: print() writes text and newline separately, and the
            # reporter thread's line could land between the main thread's two halves.
            sys.stdout.write(f"DROPPED {data.get('count', 0)} {data.get('reason')}\\n")
            sys.stdout.flush()

    tracemalloc.start()
    engine = DeliveryEngine(
        host=PluginHost(base_api_url=base, diagnostics=sink),
        max_queue_entries=MAX_ENTRIES,
        max_queue_bytes=MAX_BYTES,
        overflow=overflow,
        block_timeout=block_timeout,
        close_timeout=close_timeout,
        timeout=60,  # the first request surely still hangs at exit (deterministic count)
    )
    log = logging.getLogger("app")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(
        IngressHandler(
            session_id="down-1",
            engine=engine,
            flush_timeout=close_timeout,
            close_timeout=close_timeout,
        )
    )
    base_mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    durations = []
    max_entries = max_bytes = 0
    for i in range(n):
        t0 = time.perf_counter()
        log.info("record %d with some text to make it look like a log line", i)
        durations.append(time.perf_counter() - t0)
        if i % 97 == 0:
            h = engine.stats()
            max_entries = max(max_entries, h.queued_entries)
            max_bytes = max(max_bytes, h.queued_bytes)
    peak = tracemalloc.get_traced_memory()[1] - base_mem
    tracemalloc.stop()
    h = engine.stats()
    durations.sort()
    sys.stdout.write(json.dumps({
        "worst": durations[-1],
        "p99": durations[int(len(durations) * 0.99) - 1],
        "max_entries": max_entries, "max_bytes": max_bytes,
        "cap_entries": MAX_ENTRIES, "cap_bytes": MAX_BYTES, "peak": peak,
        "submitted": h.submitted, "delivered": h.delivered, "dropped": h.dropped,
        "failed": h.failed, "pending": h.pending, "by_reason": h.dropped_by_reason,
        "in_flight": h.in_flight,
    }) + "\\n")
    sys.stdout.flush()
    """
)


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A listening socket that never accepts: requests hang until their timeout."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=1)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def run_app(
    base: str, n: int, overflow: str, block_timeout: float, env: dict[str, str], guard: object
) -> tuple[dict[str, object], float, dict[str, int]]:
    """(the app's numbers, seconds from its last record to its exit, drops reported)."""
    args = [base, str(n), overflow, str(block_timeout), str(CLOSE_TIMEOUT)]
    with subprocess.Popen(
        [sys.executable, "-c", APP, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        reported: dict[str, int] = {}
        stats = None
        for line in proc.stdout:
            guard.add(line)  # type: ignore[attr-defined]
            if line.startswith("DROPPED "):
                _, count, reason = line.split()
                reported[reason] = reported.get(reason, 0) + int(count)
            elif line.startswith("{"):
                stats = json.loads(line)
                break
        done_logging = time.monotonic()
        out, err = proc.communicate(timeout=3 * CLOSE_TIMEOUT + 30)
        exit_after = time.monotonic() - done_logging
    guard.add(out, err)  # type: ignore[attr-defined]
    assert proc.returncode == 0, err
    assert stats is not None, err
    for line in out.splitlines():
        if line.startswith("DROPPED "):
            _, count, reason = line.split()
            reported[reason] = reported.get(reason, 0) + int(count)
    return stats, exit_after, reported


def check_counts(stats: dict[str, object], n: int) -> None:
    assert stats["submitted"] == n
    assert stats["delivered"] == 0
    assert stats["dropped"] + stats["failed"] + stats["pending"] == n  # type: ignore[operator]
    assert sum(stats["by_reason"].values()) == stats["dropped"]  # type: ignore[attr-defined]
    assert stats["max_entries"] <= stats["cap_entries"]  # type: ignore[operator]
    assert stats["max_bytes"] <= stats["cap_bytes"]  # type: ignore[operator]


def test_down_drop_newest_never_blocks_memory_capped_drops_exact_exit_bounded(
    blackhole: str, child_env: dict[str, str], leak_guard: object
) -> None:
    stats, exit_after, reported = run_app(
        blackhole, RECORDS, "drop_newest", 1.0, child_env, leak_guard
    )
    print(
        f"\nendpoint down, drop_newest, {RECORDS} records: logger.info p99 "
        f"{stats['p99'] * 1e3:.2f} ms, worst {stats['worst'] * 1e3:.2f} ms; "
        f"queue peak {stats['max_entries']} entries / "
        f"{stats['max_bytes']} bytes (caps {stats['cap_entries']} / {stats['cap_bytes']}); "
        f"traced memory peak {stats['peak']} bytes; dropped {stats['dropped']} "
        f"{stats['by_reason']}, pending {stats['pending']}; exit {exit_after:.2f}s after "
        f"the last record (deadlines {CLOSE_TIMEOUT}s); drops reported {reported}"
    )
    assert stats["p99"] < 0.05  # type: ignore[operator]
    assert stats["worst"] < 1.0  # type: ignore[operator]
    check_counts(stats, RECORDS)
    assert stats["dropped"] >= RECORDS - stats["cap_entries"]  # type: ignore[operator]
    assert stats["peak"] < stats["cap_bytes"] + 4 * 1024 * 1024  # type: ignore[operator]
    assert exit_after < EXIT_BOUND
    # Every drop was reported through diagnostics, counted once: those while
    # logging, and the queued entries the exit's close abandoned. The requests
    # hanging on the socket at exit (one window: the first entry and those
    # pipelined behind it) are abandoned with the process (they may or may
    # not reach a server): not reported as drops.
    assert 1 <= stats["in_flight"] <= DEFAULT_WINDOW
    closed = stats["pending"] - stats["in_flight"]  # type: ignore[operator]
    assert reported == {"queue_full": stats["dropped"], "closed": closed}


def test_down_block_waits_at_most_block_timeout(
    blackhole: str, child_env: dict[str, str], leak_guard: object
) -> None:
    n, block_timeout = 1250, 0.01
    stats, exit_after, reported = run_app(
        blackhole, n, "block", block_timeout, child_env, leak_guard
    )
    print(
        f"\nendpoint down, block ({block_timeout}s), {n} records: worst logger.info "
        f"{stats['worst'] * 1e3:.1f} ms; dropped {stats['dropped']} {stats['by_reason']}; "
        f"exit {exit_after:.2f}s after the last record"
    )
    assert block_timeout <= stats["worst"] < block_timeout + 0.5  # type: ignore[operator]
    check_counts(stats, n)
    assert stats["by_reason"] == {"block_timeout": stats["dropped"]}
    assert 1 <= stats["in_flight"] <= DEFAULT_WINDOW
    closed = stats["pending"] - stats["in_flight"]  # type: ignore[operator]
    assert reported == {"block_timeout": stats["dropped"], "closed": closed}
    assert exit_after < EXIT_BOUND
