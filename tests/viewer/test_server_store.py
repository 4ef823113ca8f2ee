"""The viewer's reads over the server's store (``ingress_logging.server.store``)."""

from __future__ import annotations

import json
from typing import Any

from ingress_logging.server.store import SQLiteStore
from ingress_logging.server.viewer import StoreAuth, StoreViewer


class CountingStore(SQLiteStore):
    """The real SQLite store, counting how the viewer reads it."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.reads: list[str | None] = []

    def loglines(self, session_id: str, **options: Any) -> list[str] | None:
        self.reads.append(options.get("after"))
        return super().loglines(session_id, **options)


def put(store: Any, session_id: str, entry: dict[str, Any]) -> None:
    assert store.append(session_id, entry, json.dumps(entry), None, check=False).stored


def texts(entries: list[str] | None) -> list[Any]:
    assert entries is not None
    return [json.loads(t).get("n") for t in entries]


def test_a_session_is_read_whole_once_then_only_what_is_new() -> None:
    store = CountingStore()
    for i in range(5):
        put(store, "s1", {"uuid": f"u{i}", "n": i})
    put(store, "s1", {"type": "summary", "n": "s"})  # no uuid: cannot be an anchor
    viewer = StoreViewer(store)
    assert viewer.session("s1").entries == 6
    assert texts(viewer.window("s1", offset=3, limit=10)) == [3, 4, "s"]
    put(store, "s1", {"type": "summary", "n": "t"})
    put(store, "s1", {"uuid": "u9", "n": 9})
    assert viewer.session("s1").entries == 8
    assert texts(viewer.window("s1", offset=5, limit=10)) == ["s", "t", 9]
    assert store.reads[0] is None  # one whole read, then reads after the last uuid
    assert store.reads[1:] == ["u4", "u4", "u9"]


def test_deleted_and_rewritten_sessions_are_read_again() -> None:
    store = CountingStore()
    put(store, "s1", {"uuid": "a", "n": 1})
    viewer = StoreViewer(store)
    assert viewer.session("s1").entries == 1
    assert store.delete_session("s1")
    assert viewer.session("s1") is None
    assert viewer.window("s1", offset=0, limit=5) is None
    put(store, "s1", {"uuid": "b", "n": 2})
    assert texts(viewer.window("s1", offset=0, limit=5)) == [2]
    assert viewer.session("nope") is None


def test_copies_beyond_the_budget_are_dropped_oldest_first() -> None:
    store = CountingStore()
    for sid in ("a", "b", "c"):
        put(store, sid, {"uuid": sid, "text": "x" * 1000})
    viewer = StoreViewer(store, max_chars=2500)
    for sid in ("a", "b", "c"):
        assert viewer.session(sid).entries == 1
    store.reads.clear()
    assert viewer.session("c").entries == 1  # kept: read after its uuid
    assert viewer.session("a").entries == 1  # dropped: read whole again
    assert store.reads == ["c", None]


def test_sign_in_takes_read_or_admin_tokens_and_the_development_token() -> None:
    store = CountingStore()
    reader = store.create_token("reader", "read")
    admin = store.create_token("ops", "admin")
    writer = store.create_token("ci", "append")
    auth = StoreAuth(store, "dev-token")
    assert auth.can_read(reader)
    assert auth.can_read(admin)
    assert auth.can_read("dev-token")
    assert not auth.can_read(writer)
    assert not auth.can_read("dev-token-")
    assert not StoreAuth(store).can_read("")
    assert reader not in repr(auth)
