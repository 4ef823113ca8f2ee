"""The engine pipelines a session's appends (``pipeline_window``), across a real round trip.

The server records ``time.monotonic()`` per request; a ``DelayProxy`` puts a
round trip between it and the engine. One at a time, a session's next append
can only reach the server a full round trip after the previous one; in a
window, appends arrive back to back. Timing is asserted as lower bounds or as
orderings on that one clock.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ingress_logging import diagnostics as ev
from ingress_logging.delivery import DeliveryEngine
from ingress_logging.plugins import PluginHost
from ingress_logging.server import IngressServer
from ingress_logging.testing_proxy import DelayProxy
from ingress_logging.testing_reorder import ReorderProxy

RTT = 0.2


def _gaps(server: IngressServer, sid: str) -> list[float]:
    puts = [r for r in server.requests if r.method == "PUT" and r.session_id == sid]
    return [b.t - a.t for a, b in itertools.pairwise(puts)]


def _chain(server: IngressServer, sid: str) -> list[dict[str, Any]]:
    entries = server.entries(sid)
    uuids = [e["uuid"] for e in entries]
    assert len(set(uuids)) == len(uuids)
    assert [e["parentUuid"] for e in entries] == [None, *uuids[:-1]]
    return entries


def test_a_session_has_several_appends_in_flight(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make_engine: Callable[..., DeliveryEngine],
) -> None:
    proxy = delay_proxy_factory(ingress_server, rtt=RTT)
    engine = make_engine(base_api_url=proxy.base_url)
    for i in range(24):
        assert engine.submit("w", {"type": "user", "message": str(i)})
    assert engine.flush(30)

    entries = _chain(ingress_server, "w")
    assert [e["message"] for e in entries] == [str(i) for i in range(24)]
    gaps = _gaps(ingress_server, "w")
    assert len(gaps) == 23  # nothing was sent twice
    # Appends reached the server back to back: impossible one at a time, where
    # each waits for the reply before it, a round trip.
    assert sum(gap < RTT / 2 for gap in gaps) >= 12


def test_pipeline_window_one_sends_one_at_a_time(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make_engine: Callable[..., DeliveryEngine],
) -> None:
    proxy = delay_proxy_factory(ingress_server, rtt=RTT)
    engine = make_engine(base_api_url=proxy.base_url, pipeline_window=1)
    for i in range(4):
        assert engine.submit("one", {"type": "user", "message": str(i)})
    assert engine.flush(30)
    _chain(ingress_server, "one")
    assert all(gap >= RTT for gap in _gaps(ingress_server, "one"))


def test_entries_that_fail_mid_window_still_chain_in_order(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make_engine: Callable[..., DeliveryEngine],
) -> None:
    proxy = delay_proxy_factory(ingress_server, rtt=0.02)
    engine = make_engine(base_api_url=proxy.base_url)
    ingress_server.faults.script(
        [None, None, 503, None, "drop", None, "error_after_commit", 429], session_id="f"
    )
    for i in range(30):
        assert engine.submit("f", {"type": "user", "message": str(i)})
    assert engine.flush(30)
    entries = _chain(ingress_server, "f")
    assert [e["message"] for e in entries] == [str(i) for i in range(30)]
    assert engine.stats().delivered == 30


@pytest.mark.parametrize("status", [422, 413])
def test_a_permanent_failure_mid_window_leaves_its_gap_entry_in_its_place(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make_engine: Callable[..., DeliveryEngine],
    status: int,
) -> None:
    """The entries written behind the failed one are refused with it (their
    Last-Uuid is never stored); they are sent again after its gap entry."""
    proxy = delay_proxy_factory(ingress_server, rtt=0.05)
    engine = make_engine(base_api_url=proxy.base_url)
    ingress_server.faults.script([None, None, status], session_id="p")  # the 3rd append
    for i in range(12):
        assert engine.submit("p", {"type": "user", "message": str(i)})
    result = engine.flush(30)
    assert (result.delivered, result.failed, result.pending) == (11, 1, 0)

    stored = _chain(ingress_server, "p")
    kinds = [e.get("message", e.get("subtype")) for e in stored]
    assert kinds == ["0", "1", "gap", *(str(i) for i in range(3, 12))]
    assert stored[2]["count"] == 1
    refused = [r for r in ingress_server.requests if r.status == 409]
    assert refused  # entries were in flight behind the failed one
    assert engine.stats().gaps_written == 1


def test_a_foreign_writer_mid_window_is_chained_after(
    ingress_server: IngressServer,
    delay_proxy_factory: Callable[..., DelayProxy],
    make_engine: Callable[..., DeliveryEngine],
) -> None:
    proxy = delay_proxy_factory(ingress_server, rtt=0.02)
    engine = make_engine(base_api_url=proxy.base_url)
    ingress_server.faults.script([None, None, "foreign_write"], session_id="x")
    for i in range(10):
        assert engine.submit("x", {"type": "user", "message": str(i)})
    assert engine.flush(30)
    stored = ingress_server.entries("x")
    uuids = [e["uuid"] for e in stored]
    # One strict chain through the other writer's entry: each parentUuid is the
    # uuid stored immediately before it.
    assert [e.get("parentUuid") for e in stored[1:]] == uuids[:-1]
    mine = [e["message"] for e in stored if "message" in e]
    assert mine == [str(i) for i in range(10)]


def test_a_real_reordering_path_falls_back_once_and_loses_nothing(
    ingress_server: IngressServer,
    reorder_proxy_factory: Callable[..., ReorderProxy],
    make_engine: Callable[..., DeliveryEngine],
) -> None:
    """Through a proxy that hands the server each burst of pipelined appends in
    reverse: new sessions (their first 409s name no head, so the evidence comes
    from a recovery's session read) and later windows alike."""
    proxy = reorder_proxy_factory(ingress_server)
    events: list[str] = []
    engine = make_engine(
        base_api_url=proxy.base_url, diagnostics=lambda level, event, data: events.append(event)
    )
    sessions = ("r1", "r2", "r3")
    for i in range(20):
        for sid in sessions:
            assert engine.submit(sid, {"type": "user", "message": str(i)})
    assert engine.flush(30)

    assert max(proxy.batches) >= 2  # appends written back to back were reversed
    assert engine.stats().pipeline_fallbacks == 1
    seen = len(proxy.batches)
    for i in range(20, 25):
        assert engine.submit("r1", {"type": "user", "message": str(i)})
    assert engine.flush(30)
    assert set(proxy.batches[seen:]) == {1}  # one at a time from then on
    health = engine.stats()
    assert (health.delivered, health.failed, health.dropped) == (65, 0, 0)
    for sid in sessions:
        messages = [e["message"] for e in _chain(ingress_server, sid)]
        assert messages == [str(i) for i in range(25 if sid == "r1" else 20)]
    engine.close(5)  # the reporter says what it holds before it stops
    assert events.count(ev.PIPELINE_REORDERED) == 1


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_pipeline_window_is_checked(
    make_engine: Callable[..., DeliveryEngine], bad: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="pipeline_window"):
        make_engine(pipeline_window=bad)


class _Scripted:
    """A raw HTTP/1.1 server keeping one chain: the first PUT of a (uuid, Last-Uuid)
    pair in ``once`` gets that reply instead (nothing stored)."""

    def __init__(self) -> None:
        self.once: dict[tuple[str | None, str | None], tuple[int, dict[str, str]]] = {}
        self.stored: list[str] = []
        self.hold = threading.Event()  # the reply to "a" waits for it
        self.hold.set()
        self.seen: list[tuple[str | None, str | None]] = []  # (uuid, Last-Uuid)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = (json.loads(body).get("uuid"), self.headers.get("Last-Uuid"))
                outer.seen.append(key)
                if key[0] == "a":
                    outer.hold.wait(10)
                status, headers = outer.reply(*key)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, uuid: str | None, last: str | None) -> tuple[int, dict[str, str]]:
        if (uuid, last) in self.once:
            return self.once.pop((uuid, last))
        head = self.stored[-1] if self.stored else None
        if uuid in self.stored or last != head:
            return 409, {"x-last-uuid": head} if head else {}
        self.stored.append(str(uuid))
        return 200, {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    server = _Scripted()
    yield server
    server.close()


def test_a_reordering_path_is_counted_and_reported_once(
    scripted: _Scripted,
    make_engine: Callable[..., DeliveryEngine],
    wait_for: Callable[..., Any],
) -> None:
    events: list[str] = []
    engine = make_engine(
        host=PluginHost(
            token="t",
            base_api_url=scripted.base_url,
            diagnostics=lambda level, event, data: events.append(event),
        )
    )
    # b is acknowledged, yet c (sent with Last-Uuid b) is refused naming a: the
    # path handled c before b. b, c and d go in one window: they are queued
    # while the reply to a is held back.
    scripted.once[("c", "b")] = (409, {"x-last-uuid": "a"})
    scripted.hold.clear()
    assert engine.submit("r", {"type": "user", "uuid": "a"})
    wait_for(lambda: scripted.seen == [("a", None)], what="a on the wire")
    for uuid in "bcd":
        assert engine.submit("r", {"type": "user", "uuid": uuid})
    scripted.hold.set()
    assert engine.flush(10)
    for uuid in "ef":
        assert engine.submit("r", {"type": "user", "uuid": uuid})
    assert engine.flush(10)

    health = engine.stats()
    assert health.delivered == 6
    assert health.pipeline_fallbacks == 1
    engine.close(5)  # the reporter hands every event to the sinks before it stops
    assert events.count(ev.PIPELINE_REORDERED) == 1
    assert scripted.stored == ["a", "b", "c", "d", "e", "f"]
    assert scripted.seen.count(("c", "b")) == 2  # refused, then sent again alone
    assert scripted.seen[-2:] == [("e", "d"), ("f", "e")]
