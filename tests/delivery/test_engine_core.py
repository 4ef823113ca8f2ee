"""The engine core's promises under bursts, races, other writers and hostile replies.

Each test is a regression test for one item of the engine-core issue, against
the real local server (or a small misbehaving loopback server) over real
sockets.
"""

from __future__ import annotations

import http.server
import itertools
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingress_logging import IngressHandler
from ingress_logging.delivery import DeliveryEngine, FlushResult, SqliteSpool


def _contents(server: Any, sid: str) -> list[str]:
    return [e["content"] for e in server.entries(sid)]


def _chained(entries: list[dict[str, Any]]) -> bool:
    return all(b["parentUuid"] == a["uuid"] for a, b in itertools.pairwise(entries))


# -- item 2: a warm engine scales out -------------------------------------------


def test_a_burst_after_the_engine_idled_gets_a_worker_per_ready_session(
    ingress_server, make_engine, wait_for
):
    """Every request is held until the burst is in: with one worker only one
    request can be outstanding; with a worker per session, eight are."""
    gate = threading.Event()
    held: list[str] = []
    lock = threading.Lock()

    def hold(request: httpx.Request) -> None:
        if request.method == "PUT" and b"burst" in request.content:
            with lock:
                held.append(request.url.path)
            gate.wait(10)

    client = httpx.Client(event_hooks={"request": [hold]})
    engine = make_engine(max_concurrency=8, http_client=client)
    assert engine.submit("warm", {"type": "system", "content": "warm-up"})
    assert engine.flush(5)  # one worker started, and now idle
    for k in range(16):
        assert engine.submit(f"b{k}", {"type": "system", "content": "burst"})
    try:
        wait_for(lambda: len(held) == 8, what="eight requests in flight at once")
        assert engine.stats().workers == 8
    finally:
        gate.set()
    assert engine.flush(10)
    engine.close(2)
    client.close()
    assert all(_contents(ingress_server, f"b{k}") == ["burst"] for k in range(16))


# -- item 3: one atomic submit path ------------------------------------------------


def test_a_blocked_submit_never_lands_in_a_session_state_eviction_forgot(
    ingress_server, make_engine, wait_for
):
    release_a, release_x1, x1_sent = threading.Event(), threading.Event(), threading.Event()

    def hook(request: httpx.Request) -> None:
        if request.method != "PUT":
            return
        if request.url.path.endswith("/A"):
            release_a.wait(10)
        if b'"x1' in request.content:
            x1_sent.set()
            release_x1.wait(10)

    engine = make_engine(
        max_concurrency=3,
        max_idle_sessions=1,
        overflow="block",
        block_timeout=10,
        max_queue_bytes=10_000,
        http_client=(client := httpx.Client(event_hooks={"request": [hook]})),
    )
    assert engine.submit("X", {"type": "system", "content": "x0"})
    assert engine.flush(5)
    assert engine.submit("A", {"type": "system", "content": "a" * 6000})
    blocked = threading.Thread(
        target=engine.submit, args=("X", {"type": "system", "content": "x1" + "y" * 6000})
    )
    blocked.start()
    wait_for(lambda: engine.stats().waiting_for_room == 1, what="the x1 submit waits for room")
    assert engine.submit("B", {"type": "system", "content": "b"})
    wait_for(lambda: _contents(ingress_server, "B") == ["b"], what="B delivered (X evictable)")
    release_a.set()
    blocked.join(10)
    assert x1_sent.wait(10)
    assert engine.submit("X", {"type": "system", "content": "x2"})
    early = engine.flush(0.3)
    assert early.pending >= 2  # x1 is in flight, x2 behind it: nothing is lost from sight
    release_x1.set()
    assert engine.flush(10)
    engine.close(2)
    client.close()
    stored = ingress_server.entries("X")
    assert [e["content"][:2] for e in stored] == ["x0", "x1", "x2"]
    assert _chained(stored)


# -- item 4: one chain rule, in memory and spool mode -------------------------------


def test_spool_mode_concurrent_submitters_chain_in_stored_order(
    ingress_server, make_engine, tmp_path
):
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: any unlocked window shows
    engine = make_engine(spool_dir=tmp_path / "spool", max_concurrency=4)
    barrier = threading.Barrier(8)

    def submitter(n: int) -> None:
        barrier.wait()
        for i in range(150):
            engine.submit("chain", {"type": "system", "content": f"{n}-{i}"})

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert engine.flush(30)
    stored = ingress_server.entries("chain")
    assert len(stored) == 1200
    assert stored[0]["parentUuid"] is None
    assert _chained(stored)


def test_a_new_engine_and_another_writer_keep_the_chain(ingress_server, make_engine):
    """A restarted process (a fresh engine: no head known) and a foreign entry
    in between: each entry the engine fills names the one stored before it."""
    first = make_engine()
    for i in range(3):
        assert first.submit("restart", {"type": "system", "content": f"one-{i}"})
    assert first.flush(5)
    first.close(2)
    ingress_server.append_foreign("restart")
    second = make_engine()
    for i in range(2):
        assert second.submit("restart", {"type": "system", "content": f"two-{i}"})
    assert second.flush(5)
    ingress_server.append_foreign("restart")
    assert second.submit("restart", {"type": "system", "content": "three"})
    assert second.flush(5)
    stored = ingress_server.entries("restart")
    assert len(stored) == 8
    assert stored[0]["parentUuid"] is None
    assert _chained(stored)  # never a new root in the middle of the session


def test_spool_restart_keeps_the_chain(ingress_server, make_engine, tmp_path):
    spool = tmp_path / "spool"
    first = make_engine(spool_dir=spool)
    assert first.submit("s", {"type": "system", "content": "before"})
    assert first.flush(5)
    first.close(2)
    second = make_engine(spool_dir=spool)
    assert second.submit("s", {"type": "system", "content": "after"})
    assert second.flush(5)
    stored = ingress_server.entries("s")
    assert [e["content"] for e in stored] == ["before", "after"]
    assert _chained(stored)


# -- item 7: a 409 naming the head the client sent is no proof -------------------------


class _SameHead409(http.server.BaseHTTPRequestHandler):
    """Answers every PUT 409 with ``x-last-uuid`` = the request's ``Last-Uuid``
    (or a fixed head), and every GET with a session holding only that head."""

    HEAD = "00000000-0000-4000-8000-000000000000"
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(409)
        self.send_header("x-last-uuid", self.headers.get("last-uuid") or self.HEAD)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = json.dumps({"loglines": [{"type": "system", "uuid": self.HEAD}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def same_head_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SameHead409)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_409_echoing_the_sent_head_is_never_reported_delivered(same_head_server):
    engine = DeliveryEngine(base_api_url=same_head_server, token="t", close_timeout=2)
    try:
        for i in range(5):
            assert engine.submit("s", {"type": "system", "content": f"m{i}"})
        result = engine.flush(20)
        assert (result.delivered, result.failed) == (0, 5)
        assert engine.stats().failed_by_reason == {"retries_exhausted": 5}  # read, never "stored"
    finally:
        engine.close(2)


# -- item 8 (in one process): another writer's progress is not a failure ----------------


def test_an_engine_and_a_client_on_one_session_store_every_entry_once(ingress_server, make_engine):
    from ingress_logging import SessionIngressClient
    from ingress_logging.protocol import RetryPolicy

    engine = make_engine(retry_policy=RetryPolicy(max_attempts=2, base_delay=0.001))
    client = SessionIngressClient(
        ingress_server.token,
        base_api_url=ingress_server.base_url,
        retry_policy=RetryPolicy(max_attempts=2, base_delay=0.001),
    )

    def other_writer() -> None:
        for i in range(100):
            assert client.append_session_log(
                "race", {"type": "system", "content": f"c{i}", "uuid": os.urandom(16).hex()}
            )

    writer = threading.Thread(target=other_writer)
    writer.start()
    for i in range(100):
        assert engine.submit("race", {"type": "system", "content": f"e{i}"})
    writer.join()
    result = engine.flush(30)
    client.close()
    assert (result.delivered, result.failed) == (100, 0)
    contents = _contents(ingress_server, "race")
    assert sorted(contents) == sorted([f"c{i}" for i in range(100)] + [f"e{i}" for i in range(100)])
    assert [c for c in contents if c[0] == "e"] == [f"e{i}" for i in range(100)]


# -- item 10: a damaged spool never stops the app ------------------------------------------


def test_a_corrupt_spool_is_moved_aside_and_the_handler_is_built(
    ingress_server, tmp_path, diagnostics, make_engine
):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "spool.sqlite3").write_bytes(b"this is not a database" * 100)
    engine = make_engine(spool_dir=spool, diagnostics=diagnostics)
    handler = IngressHandler(engine=engine, session_id="after-corrupt")
    log = logging.getLogger("test.corrupt-spool")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("still logging")
        assert engine.flush(5)
    finally:
        log.removeHandler(handler)
    assert _contents(ingress_server, "after-corrupt") == ["still logging"]
    engine.close(2)
    kept = [p for p in spool.iterdir() if p.name.startswith("spool.sqlite3.damaged-")]
    assert len(kept) == 1
    assert kept[0].read_bytes().startswith(b"this is not a database")
    resets = [d for _, name, d in diagnostics.events if name == "spool_reset"]
    assert resets == [{"path": str(kept[0]), "error": resets[0]["error"]}]
    with sqlite3.connect(spool / "spool.sqlite3") as conn:  # the fresh one is a database
        assert conn.execute("SELECT count(*) FROM spool").fetchone() == (0,)


def test_a_spool_built_directly_still_refuses_a_corrupt_file(tmp_path: Path):
    from ingress_logging.errors import ConfigError

    (tmp_path / "spool.sqlite3").write_bytes(b"garbage" * 1000)
    with pytest.raises(ConfigError, match="cannot open spool database"):
        SqliteSpool(tmp_path)


# -- item 11: huge messages are cut, not dropped -------------------------------------------


def test_a_50_mb_message_is_truncated_and_flagged_not_dropped(ingress_server, make_engine):
    engine = make_engine()
    handler = IngressHandler(engine=engine, session_id="huge")
    log = logging.getLogger("test.huge")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("y" * 50_000_000)
        log.warning("after")
        assert engine.flush(10)
    finally:
        log.removeHandler(handler)
    stored = ingress_server.entries("huge")
    assert [len(e["content"]) for e in stored] == [64 * 1024, 5]
    assert stored[0]["truncated"] == {"content": 50_000_000}
    assert engine.stats().dropped == 0


# -- conflicting arguments -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"host": "HOST", "token": "t"}, "host=.*token="),
        ({"spool": "SPOOL", "spool_dir": "/tmp/x"}, "spool=.*spool_dir="),
        ({"transport": "T", "timeout": 3.0}, "transport=.*timeout="),
        ({"transport": "T", "http_client": "C"}, "transport=.*http_client="),
    ],
)
def test_conflicting_arguments_raise_type_error_naming_both(kwargs, names, tmp_path):
    from ingress_logging.plugins import PluginHost

    values = {"HOST": PluginHost(token="t"), "SPOOL": object(), "T": lambda host: None, "C": None}
    given = {k: values.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    if "http_client" in given:
        given["http_client"] = httpx.Client()
    if "host" not in given:
        given["base_api_url"] = "http://127.0.0.1:9"
    try:
        with pytest.raises(TypeError, match=names):
            DeliveryEngine(**given)
    finally:
        if "http_client" in given:
            given["http_client"].close()


# -- item 1, the rules of re-entry (the signal and __del__ runs are in tests/reliability) --


def test_calls_nested_inside_the_engine_take_no_lock(ingress_server, make_engine):
    from ingress_logging.delivery import _reentry

    engine = make_engine()
    with _reentry.guard():  # as if a signal handler interrupted this thread inside submit
        assert engine.submit("nested", {"type": "system", "content": "inner"})
        assert engine.flush(5) == FlushResult(timed_out=True)  # returns at once
        with pytest.raises(RuntimeError, match="same thread"):
            engine.stats()
        for i in range(_reentry.MAX_DEFERRED + 5):  # "inner" is kept already: 6 beyond
            engine.submit("nested", {"type": "system", "content": f"n{i}"})
        assert ingress_server.entries("nested") == []
    # Leaving the outermost call queued what waited, in order.
    assert engine.flush(30).delivered == _reentry.MAX_DEFERRED
    stored = _contents(ingress_server, "nested")
    assert stored == ["inner"] + [f"n{i}" for i in range(_reentry.MAX_DEFERRED - 1)]
    assert engine.stats().dropped_by_reason == {"reentrant": 6}
