"""flush/close deadlines, the logging lock, atexit in a real interpreter, and fork."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ingress_logging.protocol import RetryPolicy


@pytest.fixture
def down_url(ingress_server_factory):
    """A base URL on which nothing listens any more (connection refused)."""
    srv = ingress_server_factory()
    url = srv.base_url
    srv.stop()
    return url


def test_flush_and_close_keep_their_deadlines_with_the_server_down(make_engine, down_url):
    engine = make_engine(
        base_api_url=down_url, retry_policy=RetryPolicy(max_attempts=100, base_delay=0.05)
    )
    for i in range(20):
        assert engine.submit(f"d{i % 3}", {"type": "user", "message": str(i)})
    t0 = time.monotonic()
    result = engine.flush(0.3)
    assert 0.3 <= time.monotonic() - t0 < 1.5
    assert result.timed_out
    assert not result
    assert result.pending == 20
    t0 = time.monotonic()
    engine.close(0.3)
    assert time.monotonic() - t0 < 1.5
    health = engine.stats()
    assert health.dropped_by_reason.get("closed", 0) + health.pending == 20
    assert health.retried > 0
    assert not engine.submit("d0", {"type": "user", "message": "late"})
    assert engine.stats().dropped_by_reason["closed"] >= 1
    assert engine.close(1.0) == type(result)()  # idempotent: nothing left to say


def test_flush_reports_what_finished_before_it_was_called(ingress_server, make_engine, wait_for):
    """A failure that beats the caller's flush() still makes that flush fail;
    the next flush starts from a clean slate."""
    engine = make_engine(token="not-the-servers-token", max_queue_entries=1)
    assert engine.submit("early", {"type": "user", "n": 0})
    wait_for(lambda: engine.stats().failed == 1, what="the 401 to be booked")
    result = engine.flush(5)
    assert (result.delivered, result.failed, result.pending) == (0, 1, 0)
    assert not result
    again = engine.flush(5)
    assert (again.delivered, again.failed, again.dropped) == (0, 0, 0)
    assert again


def test_flush_counts_refused_submits(make_engine, gate):
    engine = make_engine(max_queue_entries=1, http_client=gate.client)
    assert engine.submit("full", {"type": "user", "n": 0})
    assert gate.holding.wait(10), "the first entry never reached the network"
    assert engine.submit("full", {"type": "user", "n": 1}) is False
    gate.open()
    result = engine.flush(10)
    assert (result.delivered, result.dropped) == (1, 1)
    assert not result


def test_flush_under_the_logging_lock_with_cold_caches_does_not_deadlock(
    ingress_server, make_engine
):
    """What dictConfig does: hold the module lock, clear level caches, flush handlers."""
    engine = make_engine()
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    logging.getLogger("httpcore").setLevel(logging.DEBUG)
    try:
        with logging._lock:  # type: ignore[attr-defined]
            logging.Logger.manager._clear_cache()  # type: ignore[attr-defined]
            for i in range(20):
                engine.submit("lk", {"type": "user", "message": str(i)})
            t0 = time.monotonic()
            result = engine.flush(10)
            elapsed = time.monotonic() - t0
    finally:
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        logging.getLogger("httpcore").setLevel(logging.NOTSET)
    assert result
    assert result.pending == 0
    assert elapsed < 5
    assert len(ingress_server.entries("lk")) == 20


def test_worker_threads_are_named_and_recognised(ingress_server, make_engine):
    engine = make_engine()
    engine.submit("n", {"type": "user"})
    assert engine.flush(5)
    names = [t.name for t in threading.enumerate() if t.name.startswith("ingress_logging.")]
    assert any(".worker-" in n for n in names)
    assert not engine.is_worker_thread()


# Exit is timed inside the child, from the end of the script (where exit
# handling begins) to the last atexit hook: interpreter start-up and imports are
# not the engine's and vary tenfold with the machine's load.
_EXIT_CLOCK = """
import atexit, json, time
_exit_began = []
def _report_exit():  # registered first, so it runs last, after every other exit hook
    print(json.dumps({"exit_seconds": time.monotonic() - _exit_began[0]}), flush=True)
atexit.register(_report_exit)
"""
_EXIT_BEGINS = "\n_exit_began.append(time.monotonic())\n"


def _exit_seconds(out: subprocess.CompletedProcess[str]) -> float:
    return float(json.loads(out.stdout.strip().splitlines()[-1])["exit_seconds"])


_SCRIPT = textwrap.dedent(
    """
    import sys
    from ingress_logging.delivery import DeliveryEngine
    from ingress_logging.protocol import RetryPolicy
    engine = DeliveryEngine(base_api_url=sys.argv[1], token=sys.argv[2],
                            close_timeout=float(sys.argv[3]),
                            retry_policy=RetryPolicy(max_attempts=1000, base_delay=0.01))
    for i in range(50):
        engine.submit("exit-session", {"type": "user", "message": str(i)})
    print("submitted", flush=True)
    """
)


def _run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter, to its real exit (atexit included);
    its last line of output is the exit's duration (``_exit_seconds``)."""
    return subprocess.run(
        [sys.executable, "-c", _EXIT_CLOCK + script + _EXIT_BEGINS, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


def test_short_script_loses_nothing_at_exit(ingress_server):
    """The promise is made for the default ``close_timeout`` (5 s): exit waits
    on delivery, not on the clock, so it ends as soon as all 50 are stored."""
    out = _run_script(_SCRIPT, ingress_server.base_url, ingress_server.token, "5.0")
    assert "submitted" in out.stdout
    assert [e["message"] for e in ingress_server.entries("exit-session")] == [
        str(i) for i in range(50)
    ]
    assert _exit_seconds(out) < 0.9 * 5.0  # it did not wait out the deadline
    assert ingress_server.token not in out.stdout + out.stderr


def test_exit_never_hangs_when_the_server_is_down(down_url):
    out = _run_script(_SCRIPT, down_url, "some-token", "1.0")
    assert "submitted" in out.stdout
    # One 1 s close deadline, plus 0.5 s for the exit's own thread wake-ups on a loaded machine.
    assert 0.9 <= _exit_seconds(out) < 1.0 + 0.5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_fork_child_delivers_its_own_and_never_the_parents(ingress_server, make_engine, wait_for):
    engine = make_engine()
    ingress_server.faults.latency = 0.3
    for i in range(10):
        engine.submit("parent", {"type": "user", "message": f"p{i}"})
    wait_for(lambda: engine.stats().in_flight == 1, what="parent entry in flight")
    pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only an exit code
        code = 1
        try:
            inherited = engine.stats()
            ok = inherited.submitted == 0 and inherited.queued_entries == 0
            for i in range(5):
                engine.submit("child", {"type": "user", "message": f"c{i}"})
            result = engine.flush(20)
            health = engine.stats()
            ok = ok and bool(result) and health.submitted == 5 and health.delivered == 5
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ingress_server.faults.latency = 0.0
    assert engine.flush(20)
    assert [e["message"] for e in ingress_server.entries("child")] == [f"c{i}" for i in range(5)]
    assert [e["message"] for e in ingress_server.entries("parent")] == [f"p{i}" for i in range(10)]
    # Each parent entry was sent exactly once: the child never sent the parent's queue.
    parent_puts = [r for r in ingress_server.requests if r.session_id == "parent"]
    assert len(parent_puts) == 10
    assert all(r.status in (200, 201) for r in parent_puts)
    assert engine.stats().sessions["parent"].delivered == 10


_HANDLER_EXIT_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from ingress_logging import IngressHandler
    handler = IngressHandler(base_api_url=sys.argv[1], token="some-token",
                             session_id="exit-handler", close_timeout=float(sys.argv[2]))
    log = logging.getLogger("app")
    log.addHandler(handler)
    for i in range(50):
        log.warning("record %d", i)
    print("logged", flush=True)
    """
)


def test_a_handlers_close_timeout_bounds_the_exit_with_the_server_down(down_url):
    """The shared engine closes at exit before logging.shutdown reaches the
    handler: the deadline set on the handler must reach the engine (default 5 s)."""
    out = _run_script(_HANDLER_EXIT_SCRIPT, down_url, "0.3")
    assert "logged" in out.stdout
    # 0.3 s, plus 0.5 s for the exit's own thread wake-ups on a loaded machine;
    # the engine's own 5 s would be 4.5 s or more.
    assert _exit_seconds(out) < 0.3 + 0.5


def test_the_shortest_close_timeout_asked_for_wins(make_engine):
    engine = make_engine(close_timeout=2.0)
    engine.limit_close_timeout(0.5)
    engine.limit_close_timeout(1.0)
    assert engine.close_timeout == 0.5
