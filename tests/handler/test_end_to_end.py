"""IngressHandler + the real delivery engine + the local server, over real sockets.

Deadlock-prone cases (dictConfig while entries are pending, logging.shutdown,
interpreter exit) run with a timeout guard: a thread joined with a deadline,
or a child interpreter run with ``timeout=``, so a deadlock fails the test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import ingress_logging
from ingress_logging import RetryPolicy
from ingress_logging.delivery import DeliveryEngine
from ingress_logging.handler import IngressHandler

GUARD = 60.0  # seconds before a stuck flush/shutdown counts as a deadlock


def make_handler(srv: Any, **kwargs: Any) -> IngressHandler:
    return IngressHandler(token=srv.token, base_api_url=srv.base_url, **kwargs)


def assert_chain(entries: list[dict[str, Any]], session_id: str) -> None:
    """One strict chain: parentUuid links every entry to the one before it, no duplicates."""
    uuids = [e["uuid"] for e in entries]
    assert len(set(uuids)) == len(uuids)
    for previous, entry in zip([None, *entries], entries, strict=False):
        assert entry["sessionId"] == session_id
        assert entry["parentUuid"] == (previous["uuid"] if previous else None)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_debug() -> Iterator[logging.Logger]:
    """Root (and the library's loggers) at DEBUG for one test; restored afterwards."""
    root = logging.getLogger()
    names = ("httpx", "httpcore", "ingress_logging")
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names})
    root.setLevel(logging.DEBUG)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield root
    root.setLevel(saved[0])
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_many_threads_and_sessions_arrive_complete_in_order_once(ingress_server, app_logger):
    srv = ingress_server
    handler = make_handler(srv, session_id="default-s")
    app_logger.addHandler(handler)
    threads_n, per_thread = 8, 30
    start = threading.Barrier(threads_n)

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            extra = {"t": t, "i": i}
            if i % 3 == 0:
                app_logger.info("t%d i%d", t, i, extra={**extra, "session_id": f"extra-{t % 2}"})
            elif i % 3 == 1:
                with ingress_logging.session(f"ctx-{t % 2}"):
                    app_logger.info("t%d i%d", t, i, extra=extra)
            else:
                app_logger.info("t%d i%d", t, i, extra=extra)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    result = handler.engine.flush(GUARD)
    assert result, result

    expected: dict[str, int] = Counter()
    for t in range(threads_n):
        for i in range(per_thread):
            sid = (f"extra-{t % 2}", f"ctx-{t % 2}", "default-s")[i % 3]
            expected[sid] += 1
    total = 0
    for sid, count in expected.items():
        entries = srv.entries(sid)
        assert len(entries) == count
        assert_chain(entries, sid)
        last_i: dict[int, int] = defaultdict(lambda: -1)
        for entry in entries:
            t, i = entry["extra"]["t"], entry["extra"]["i"]
            assert entry["content"] == f"t{t} i{i}"
            assert i > last_i[t]  # each thread's records in the order it logged them
            last_i[t] = i
            assert entry["type"] == "system"
            assert entry["subtype"] == "log"
            assert entry["level"] == "info"
            assert entry["logger"] == app_logger.name
            assert entry["source"]["funcName"] == "work"
            assert entry["timestamp"].endswith("Z")
        total += len(entries)
    assert total == threads_n * per_thread


def test_recursion_nothing_of_the_library_is_shipped_nothing_loops(ingress_server, root_debug):
    srv = ingress_server
    seen = ListHandler()
    # One at a time: those appends go through httpx, which logs each request.
    handler = make_handler(srv, session_id="recursion", pipeline_window=1)
    root_debug.addHandler(seen)
    root_debug.addHandler(handler)
    app = logging.getLogger("app.recursion")
    for i in range(20):
        app.debug("app %d", i)
    assert handler.engine.flush(GUARD)
    # The worker really did log (httpx/httpcore at DEBUG reach the root logger)...
    library = [r for r in seen.records if r.name.split(".")[0] in ("httpx", "httpcore")]
    assert library, "the delivery produced no httpx/httpcore records; the test proves nothing"
    # ...and none of it was shipped: the session holds exactly the app's records.
    entries = srv.entries("recursion")
    assert [e["content"] for e in entries] == [f"app {i}" for i in range(20)]
    assert {e["logger"] for e in entries} == {"app.recursion"}
    assert handler.engine.stats().submitted == 20
    puts = [r for r in srv.requests if r.method == "PUT"]
    assert len(puts) == 20


def test_logging_shutdown_flushes_without_deadlock(ingress_server, root_debug):
    srv = ingress_server
    srv.faults.latency = 0.01  # entries are still pending when shutdown starts
    handler = make_handler(srv, session_id="shutdown", flush_timeout=GUARD)
    root_debug.addHandler(handler)
    app = logging.getLogger("app.shutdown")
    for i in range(30):
        app.info("line %d", i)
    assert handler.engine.stats().pending > 0
    # shutdown() holds the handler's lock around flush(); the worker's httpx
    # records reach this same handler meanwhile.
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (logging.shutdown([weakref.ref(handler)]), done.set()), daemon=True
    )
    thread.start()
    assert done.wait(GUARD), "logging.shutdown() deadlocked"
    assert [e["content"] for e in srv.entries("shutdown")] == [f"line {i}" for i in range(30)]


def test_flush_under_the_module_lock_returns_and_delivery_continues(ingress_server, root_debug):
    srv = ingress_server
    srv.faults.latency = 0.01
    handler = make_handler(srv, session_id="module-lock", flush_timeout=GUARD)
    root_debug.addHandler(handler)
    for i in range(20):
        logging.getLogger("app.lock").info("n %d", i)
    done = threading.Event()

    def reconfigure_like() -> None:
        logging._acquireLock()  # type: ignore[attr-defined]  # what dictConfig holds
        try:
            logging.getLogger("httpx").setLevel(logging.DEBUG)  # clears the level caches
            handler.flush()
        finally:
            logging._releaseLock()  # type: ignore[attr-defined]
        done.set()

    threading.Thread(target=reconfigure_like, daemon=True).start()
    assert done.wait(GUARD), "flush() under the logging module lock deadlocked"
    assert handler.engine.flush(GUARD)
    assert len(srv.entries("module-lock")) == 20


def test_span_ids_and_unserialisable_extras_arrive(ingress_server, app_logger):
    srv = ingress_server
    handler = make_handler(srv, session_id="shape")
    app_logger.addHandler(handler)
    tracer = TracerProvider().get_tracer("tests")
    cycle: list[Any] = []
    cycle.append(cycle)
    with tracer.start_as_current_span("op") as span:
        app_logger.warning("with span", extra={"obj": object(), "cyc": cycle, "raw": b"\xff"})
    try:
        raise ValueError("boom")
    except ValueError:
        app_logger.exception("failed: %s", "step", stack_info=True)
    assert handler.engine.flush(GUARD)
    first, second = srv.entries("shape")
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert first["span_id"] == format(span.get_span_context().span_id, "016x")
    assert first["extra"]["cyc"] == ["<cycle>"]
    assert {i["reason"] for i in first["serializationIssues"]} == {
        "unserializable",
        "cycle",
        "bytes",
    }
    assert second["content"] == "failed: step"
    assert second["level"] == "error"
    assert second["exception"].endswith("ValueError: boom")
    assert second["stack"].startswith("Stack (most recent call last):")
    assert "trace_id" not in second


def run_child(script: str, *args: str) -> dict[str, Any]:
    """Run a child interpreter with a deadline; a hang is a failure, not a stuck test."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            capture_output=True,
            text=True,
            timeout=GUARD,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"child interpreter hung (deadlock?): {exc.stderr!r}")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


DICTCONFIG_SCRIPT = """
    import json, logging, logging.config, sys
    base, token = sys.argv[1:3]
    def config():
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(levelname)s %(message)s"}},
            "handlers": {"ingress": {
                "()": "ingress_logging.IngressHandler",
                "base_api_url": base, "token": token, "session_id": "dictconfig",
                "max_queue_entries": 1000, "overflow": "drop_newest",
                "level": "INFO", "formatter": "plain",
            }},
            "loggers": {"httpx": {"level": "DEBUG"}, "httpcore": {"level": "DEBUG"}},
            "root": {"level": "DEBUG", "handlers": ["ingress"]},
        }
    logging.config.dictConfig(config())
    log = logging.getLogger("app")
    for i in range(40):
        log.info("before %d", i)
    log.debug("below the handler level")
    handler = logging.getLogger().handlers[0]
    pending = handler.engine.stats().pending
    logging.config.dictConfig(config())   # flush() runs here with the module lock held
    for i in range(40):
        log.info("after %d", i)
    print(json.dumps({"pending_at_reconfigure": pending}))
    # normal exit: the engine's atexit flush and logging.shutdown() deliver the rest
"""


def test_dictconfig_reconfigure_while_pending_then_exit(ingress_server):
    srv = ingress_server
    srv.faults.latency = 0.01
    out = run_child(DICTCONFIG_SCRIPT, srv.base_url, srv.token)
    assert out["pending_at_reconfigure"] > 0  # the case the test is about really happened
    contents = [e["content"] for e in srv.entries("dictconfig")]
    expected = [f"INFO before {i}" for i in range(40)] + [f"INFO after {i}" for i in range(40)]
    assert contents == expected
    assert_chain(srv.entries("dictconfig"), "dictconfig")


RECONFIGURE_SCRIPT = """
    import itertools, json, logging, logging.config, sys, time
    from ingress_logging import IngressHandler, hookimpl
    from ingress_logging.plugins import new_plugin_manager
    base, token, mode = sys.argv[1:4]
    fresh = itertools.count()

    class LockTaker:
        @hookimpl
        def ingress_prepare_entry(self, entry, record):
            # Runs on the delivery worker; a new logger takes the logging module lock.
            logging.getLogger(f"plugin.fresh.{next(fresh)}")
            return entry

    pm = new_plugin_manager(load_entrypoints=False)
    if mode == "lock-taker":
        pm.register(LockTaker())
    handler = IngressHandler(base_api_url=base, token=token, session_id="reconf-" + mode,
                             plugins=pm, flush_timeout=60, close_timeout=60)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    for i in range(30):
        logging.getLogger("app").info("n %d", i)
    pending = handler.engine.stats().pending
    started = time.monotonic()
    # Replaces every handler: flush() and close() run with the module lock held.
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    took = time.monotonic() - started
    at_return = handler.engine.stats().delivered
    final = handler.engine.flush(60)
    print(json.dumps({"pending": pending, "took": took, "at_return": at_return,
                      "final_pending": final.pending}))
"""


def test_dictconfig_delivers_pending_entries_before_it_returns(ingress_server):
    srv = ingress_server
    srv.faults.latency = 0.01  # 30 entries take at least 0.3 s
    out = run_child(RECONFIGURE_SCRIPT, srv.base_url, srv.token, "plain")
    assert out["pending"] > 0  # the case the test is about really happened
    assert out["at_return"] == 30  # flushed under the module lock, not left behind
    assert [e["content"] for e in srv.entries("reconf-plain")] == [f"n {i}" for i in range(30)]


def test_dictconfig_is_not_stalled_by_a_delivery_path_that_needs_the_module_lock(ingress_server):
    srv = ingress_server
    srv.faults.latency = 0.01  # still pending when dictConfig starts
    out = run_child(RECONFIGURE_SCRIPT, srv.base_url, srv.token, "lock-taker")
    assert out["pending"] > 0
    # Two slices without progress (flush, then close), not 2 x 60 s of timeouts.
    assert out["took"] < 10
    assert out["final_pending"] == 0  # delivered once the lock was free again
    assert [e["content"] for e in srv.entries("reconf-lock-taker")] == [f"n {i}" for i in range(30)]


FILECONFIG_INI = """
[loggers]
keys=root

[handlers]
keys=ingress

[formatters]
keys=

[logger_root]
level=INFO
handlers=ingress

[handler_ingress]
class=ingress_logging.handler.IngressHandler
level=INFO
args=('{base}/v1/session_ingress/session/{{session_id}}', '{token}', 'fileconfig')
kwargs={{'max_queue_entries': 500, 'overflow': 'drop_oldest'}}
"""

FILECONFIG_SCRIPT = """
    import logging, logging.config, sys
    import ingress_logging
    logging.config.fileConfig(sys.argv[1])
    for i in range(10):
        logging.getLogger("app").info("file %d", i)
    with ingress_logging.session("fileconfig-ctx"):
        logging.getLogger("app").warning("in context")
"""


def test_fileconfig_args_tuple(ingress_server, tmp_path):
    srv = ingress_server
    ini = tmp_path / "logging.ini"
    ini.write_text(FILECONFIG_INI.format(base=srv.base_url, token=srv.token))
    run_child(FILECONFIG_SCRIPT, str(ini))
    assert [e["content"] for e in srv.entries("fileconfig")] == [f"file {i}" for i in range(10)]
    assert [e["content"] for e in srv.entries("fileconfig-ctx")] == ["in context"]


def test_asyncio_tasks_each_in_their_own_session(ingress_server, app_logger):
    srv = ingress_server
    handler = make_handler(srv)  # no default: every record must find its task's session
    app_logger.addHandler(handler)

    async def task(n: int) -> None:
        with ingress_logging.session(f"task-{n}"):
            for i in range(5):
                app_logger.info("task %d step %d", n, i)
                await asyncio.sleep(0)  # interleave with the other tasks

    async def main() -> None:
        await asyncio.gather(*(task(n) for n in range(4)))

    asyncio.run(main())
    assert handler.engine.flush(GUARD)
    for n in range(4):
        entries = srv.entries(f"task-{n}")
        assert [e["content"] for e in entries] == [f"task {n} step {i}" for i in range(5)]
        assert_chain(entries, f"task-{n}")
    assert handler.dropped() == {}


def test_megabyte_message_arrives_truncated_and_marked(ingress_server, app_logger):
    srv = ingress_server
    handler = make_handler(srv, session_id="big")
    app_logger.addHandler(handler)
    app_logger.info("%s", "y" * (1024 * 1024))
    app_logger.info("after")
    assert handler.engine.flush(GUARD)
    big, after = srv.entries("big")
    assert big["content"] == "y" * 65536
    assert big["truncated"] == {"content": 1024 * 1024}
    assert after["content"] == "after"


def test_close_leaves_a_shared_engine_running(ingress_server, app_logger):
    srv = ingress_server
    first = make_handler(srv, session_id="first")
    second = make_handler(srv, session_id="second")
    assert first.engine is second.engine
    app_logger.addHandler(second)
    first.close()
    first.close()  # closing twice is harmless
    app_logger.info("still delivered")
    assert second.engine.flush(GUARD)
    assert [e["content"] for e in srv.entries("second")] == ["still delivered"]
    assert not second.engine.closed


def test_explicit_engine_is_not_closed_by_the_handler(ingress_server, app_logger):
    srv = ingress_server
    engine = DeliveryEngine(base_api_url=srv.base_url, token=srv.token)
    try:
        handler = IngressHandler(engine=engine, session_id="explicit")
        app_logger.addHandler(handler)
        app_logger.info("one")
        app_logger.removeHandler(handler)
        handler.close()  # flushes (close_timeout) and detaches
        assert [e["content"] for e in srv.entries("explicit")] == ["one"]
        assert not engine.closed
        assert engine.submit("explicit", {"type": "system", "content": "two"})
        assert engine.flush(GUARD)
        assert len(srv.entries("explicit")) == 2
    finally:
        engine.close(GUARD)


SERVER_DOWN_SCRIPT = """
    import logging, sys
    import ingress_logging
    handler = ingress_logging.IngressHandler(
        base_api_url=sys.argv[1], token="t", session_id="down",
        flush_timeout=120, close_timeout=120,
    )
    logging.getLogger().addHandler(handler)
    for i in range(50):
        logging.getLogger("app").warning("lost %d", i)
"""


@pytest.mark.slow
def test_exit_with_the_server_down_is_bounded_by_the_engine_not_the_handler(ingress_server):
    srv = ingress_server
    base = srv.base_url
    srv.close()  # nothing listens there any more
    started = time.monotonic()
    run_child(SERVER_DOWN_SCRIPT, base)
    # The engine's atexit close (5 s deadline) runs before logging.shutdown();
    # the handler's 120 s flush/close timeouts must not add to it.
    assert time.monotonic() - started < 30


def test_engine_options_pass_through(ingress_server, app_logger):
    srv = ingress_server
    handler = make_handler(
        srv,
        session_id="retried",
        max_concurrency=2,
        retry_policy=RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.01),
    )
    assert handler.engine.max_concurrency == 2
    app_logger.addHandler(handler)
    srv.faults.fail_next(2)  # two 503s, retried within milliseconds
    app_logger.info("survives two 503s")
    assert handler.engine.flush(GUARD)
    assert [e["content"] for e in srv.entries("retried")] == ["survives two 503s"]
    assert handler.engine.stats().retried == 2


def test_unknown_engine_option_fails_at_construction(ingress_server):
    with pytest.raises(TypeError):
        make_handler(ingress_server, session_id="s", no_such_option=1)


def test_handler_stats_are_the_engines_health_numbers(ingress_server, app_logger):
    srv = ingress_server
    handler = make_handler(srv, session_id="numbers")
    app_logger.addHandler(handler)
    srv.faults.fail_next(1, status=400, session_id="numbers")  # the first record fails for good
    app_logger.info("lost")
    app_logger.info("kept")
    assert not handler.engine.flush(GUARD)  # one failure since the last flush
    health = handler.stats()
    assert (health.submitted, health.delivered, health.retried, health.dropped, health.failed) == (
        2,
        1,
        0,
        0,
        1,
    )
    assert handler.stats().sessions["numbers"] == health.sessions["numbers"]
    assert health.sessions["numbers"].failed == 1
