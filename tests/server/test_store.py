"""The store interface, engine by engine: CAS append, listing, deletion, retention,
tokens, migrations. The ``store`` fixture (conftest) yields every engine available."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta

import pytest

from ingress_logging.server.store import (
    AppendRequest,
    SchemaError,
    Store,
    UnknownEntryError,
    open_store,
)
from ingress_logging.server.store.base import now
from ingress_logging.server.store.sqlite import _V1, _V2, SCHEMA_VERSION, SQLiteStore


def _put(store: Store, sid: str, uuid: str, last: str | None) -> int:
    entry = {"type": "user", "uuid": uuid}
    return store.append(sid, entry, json.dumps(entry), last).status


def test_append_is_a_compare_and_set_on_the_head(store: Store):
    assert _put(store, "s", "a", None) == 201
    assert _put(store, "s", "b", "a") == 200
    assert _put(store, "s", "c", "a") == 409  # stale head
    assert _put(store, "s", "b", "b") == 409  # uuid already stored
    assert store.head("s") == "b"
    assert [json.loads(x)["uuid"] for x in store.loglines("s") or []] == ["a", "b"]


def test_loglines_after_an_entry(store: Store):
    for i, u in enumerate("abcd"):
        _put(store, "s", u, None if i == 0 else "abcd"[i - 1])
    assert [json.loads(x)["uuid"] for x in store.loglines("s", after="b") or []] == ["c", "d"]
    assert store.loglines("s", after="d") == []
    with pytest.raises(UnknownEntryError):
        store.loglines("s", after="zz")
    assert store.loglines("nope", after="a") is None


def test_list_sessions_newest_first_paginated_and_filtered(store: Store):
    for sid in ("team-a", "team-b", "other", "team-c"):
        _put(store, sid, "u1", None)
    _put(store, "team-a", "u2", "u1")  # team-a is now the most recent
    page = store.list_sessions(prefix="team-", limit=2)
    assert [s.id for s in page.sessions] == ["team-a", "team-c"]
    assert page.sessions[0].entries == 2
    assert page.sessions[0].first_activity <= page.sessions[0].last_activity
    assert page.next_cursor is not None
    rest = store.list_sessions(prefix="team-", limit=2, cursor=page.next_cursor)
    assert [s.id for s in rest.sessions] == ["team-b"]
    assert rest.next_cursor is None
    assert [s.id for s in store.list_sessions(prefix="TEAM").sessions] == []  # case matters
    with pytest.raises(ValueError):
        store.list_sessions(cursor="not-a-cursor")


def test_delete_and_retention_sweep(store: Store):
    _put(store, "keep", "a", None)
    _put(store, "drop", "a", None)
    assert store.delete_session("drop") is True
    assert store.delete_session("drop") is False
    assert store.loglines("drop") is None
    assert store.sweep(now() - timedelta(hours=1)) == 0
    assert store.sweep(now() + timedelta(seconds=1)) == 1
    assert store.count_events() == 0
    assert _put(store, "keep", "a", None) == 201  # a deleted session starts afresh


def test_tokens_are_stored_hashed_scoped_and_revocable(store: Store):
    plain = store.create_token("ci", "append")
    row = store.verify_token(plain)
    assert row is not None
    assert (row.name, row.scope) == ("ci", "append")
    assert row.allows("append")
    assert not row.allows("read")
    assert store.verify_token(plain + "x") is None
    assert [t.name for t in store.list_tokens()] == ["ci"]
    assert plain not in repr(store.list_tokens())
    with pytest.raises(ValueError):
        store.create_token("ci", "read")  # names are unique
    with pytest.raises(ValueError):
        store.create_token("bad name", "read")
    with pytest.raises(ValueError):
        store.create_token("x", "write")  # type: ignore[arg-type]
    assert store.revoke_token("ci") is True
    assert store.verify_token(plain) is None
    assert store.revoke_token("ci") is False
    admin = store.verify_token(store.create_token("ops", "admin"))
    assert admin is not None
    assert admin.allows("read")
    assert admin.allows("append")


def test_healthcheck_and_version(store: Store):
    store.healthcheck()
    assert store.schema_version() >= 2


def test_an_unversioned_sqlite_database_is_upgraded(tmp_path):
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    conn.execute("INSERT INTO sessions VALUES ('s', 'a', '2026-01-01T00:00:00.000Z')")
    conn.execute(
        "INSERT INTO events (session_id, uuid, event_type, is_compaction, is_entry, payload,"
        " created_at) VALUES ('s', 'a', 'user', 0, 1, '{\"uuid\": \"a\"}',"
        " '2026-01-01T00:00:01.000Z')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="migrate"):
        open_store(path, migrate=False)
    store = open_store(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        (row,) = store.list_sessions().sessions
        assert (row.id, row.entries, row.last_activity) == ("s", 1, "2026-01-01T00:00:01.000Z")
        assert _put(store, "s", "b", "a") == 200
    finally:
        store.close()


def test_a_version_2_sqlite_database_is_upgraded_and_read(tmp_path):
    path = str(tmp_path / "v2.db")
    conn = sqlite3.connect(path)
    conn.executescript(_V1 + _V2 + "PRAGMA user_version = 2;")
    conn.execute(
        "INSERT INTO sessions (id, head, created_at, entries, last_activity, last_event)"
        " VALUES ('s', 'a', '2026-01-01T00:00:00.000Z', 1, '2026-01-01T00:00:01.000Z', 1)"
    )
    conn.execute(
        "INSERT INTO events (session_id, uuid, event_type, is_compaction, is_entry, payload,"
        " created_at) VALUES ('s', 'a', 'user', 0, 1, '{\"uuid\": \"a\"}',"
        " '2026-01-01T00:00:01.000Z')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="migrate"):
        open_store(path, migrate=False)
    store = open_store(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION == 3
        assert store.loglines("s") == ['{"uuid": "a"}']
        (row,) = store.list_sessions().sessions
        assert (row.id, row.entries, row.last_activity) == ("s", 1, "2026-01-01T00:00:01.000Z")
        assert _put(store, "s", "b", "a") == 200
        assert _put(store, "t", "x", None) == 201
        assert [s.id for s in store.list_sessions().sessions] == ["t", "s"]
        assert store.events_page("t", 0, 10)[0].id == 3  # type: ignore[index]
        # retention still finds the idle session, without an index on last_activity
        assert store.sweep(now() - timedelta(seconds=60)) == 0
        store.delete_session("t")
        assert store.sweep(now() + timedelta(seconds=1)) == 1
        assert not store.exists("s")
    finally:
        store.close()
    conn = sqlite3.connect(path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "sessions_by_activity" not in indexes
    assert {"events_by_session", "events_uuid_once", "sessions_by_recency"} <= indexes


def test_a_newer_sqlite_schema_is_refused(tmp_path):
    path = str(tmp_path / "new.db")
    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer"):
        open_store(path)


def test_an_unopenable_sqlite_path_is_named(tmp_path):
    from ingress_logging.server.store import StoreError

    bad = str(tmp_path / "no-such-dir" / "x.db")
    with pytest.raises(StoreError, match="no-such-dir"):
        open_store(bad)


def test_an_old_postgres_database_is_upgraded_and_a_newer_refused(pg_url):
    import threading

    import psycopg

    from ingress_logging.server.store import postgres

    with psycopg.connect(pg_url, autocommit=True) as conn:  # what the first version created
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        for statement in postgres.MIGRATIONS[1].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO sessions (id, head, created_at, last_activity)"
            " VALUES ('s', NULL, now(), now())"
        )
    with pytest.raises(SchemaError, match="migrate"):
        open_store(pg_url, migrate=False)
    opened: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:  # two replicas starting at once: each migration applied once
        try:
            opened.append(open_store(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    try:
        assert [s.schema_version() for s in opened] == [postgres.SCHEMA_VERSION] * 2
        assert opened[0].exists("s")
        assert opened[0].create_token("after-upgrade", "read").startswith("ilt_")
    finally:
        for s in opened:
            s.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (postgres.SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaError, match="newer"):
        open_store(pg_url)


def test_an_unreachable_postgres_is_named_without_its_password():
    from ingress_logging.server.store import StoreError

    with pytest.raises(StoreError) as caught:
        open_store("postgresql://someone:s3cret@127.0.0.1:1/nowhere")
    assert "127.0.0.1:1/nowhere" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_batch_decides_each_append_in_order_in_one_transaction(store: Store):
    _put(store, "old", "o1", None)

    def req(sid: str, uuid: str | None, last: str | None) -> AppendRequest:
        entry = {"type": "user"} if uuid is None else {"type": "user", "uuid": uuid}
        return AppendRequest(sid, entry, json.dumps(entry), last)

    results = store.append_batch(
        [
            req("new", "a", None),  # creates the session
            req("new", "b", "a"),  # sees the head the first one left
            req("new", "c", "a"),  # stale: refused, the others stand
            req("old", "o1", "o1"),  # a uuid already stored: refused
            req("old", "o2", "o1"),
            req("new", None, "b"),  # no uuid: stored, the head stays
            req("none", "x", "missing"),  # a Last-Uuid for a session that does not exist
            req("new", "b", "b"),  # the uuid was stored earlier in this batch
        ]
    )
    assert [(r.status, r.head, r.stored) for r in results] == [
        (201, "a", True),
        (200, "b", True),
        (409, "b", False),
        (409, "o1", False),
        (200, "o2", True),
        (200, "b", True),
        (409, None, False),
        (409, "b", False),
    ]
    assert [json.loads(x).get("uuid") for x in store.loglines("new") or []] == ["a", "b", None]
    assert [json.loads(x)["uuid"] for x in store.loglines("old") or []] == ["o1", "o2"]
    assert (store.head("new"), store.head("old")) == ("b", "o2")
    assert not store.exists("none")  # a refused first append leaves no session behind
    listed = {s.id: s.entries for s in store.list_sessions().sessions}
    assert listed == {"new": 3, "old": 2}
    assert store.append_batch([]) == []


def test_an_older_uuid_sent_with_the_right_last_uuid_is_refused_and_its_batch_stands(
    store: Store,
):
    # The head check alone would accept this append: only the uuids already
    # stored refuse it, and the batch around it is decided as usual.
    _put(store, "s", "a", None)
    _put(store, "s", "b", "a")

    def req(sid: str, uuid: str, last: str | None, *, check: bool = True) -> AppendRequest:
        entry = {"type": "user", "uuid": uuid}
        return AppendRequest(sid, entry, json.dumps(entry), last, check)

    results = store.append_batch(
        [
            req("t", "x", None),
            req("s", "a", "b"),  # the head is b, but a is stored
            req("s", "c", "b"),
            req("s", "b", None, check=False),  # a foreign writer skips the head check only
            req("t", "y", "x"),
        ]
    )
    assert [(r.status, r.head, r.stored) for r in results] == [
        (201, "x", True),
        (409, "b", False),
        (200, "c", True),
        (409, "c", False),
        (200, "y", True),
    ]
    assert [json.loads(x)["uuid"] for x in store.loglines("s") or []] == ["a", "b", "c"]
    assert [json.loads(x)["uuid"] for x in store.loglines("t") or []] == ["x", "y"]
    assert {s.id: s.entries for s in store.list_sessions().sessions} == {"s": 3, "t": 2}


def test_the_wal_of_a_file_database_is_checkpointed_and_stays_bounded(tmp_path, monkeypatch):
    from ingress_logging.server.store import sqlite as sqlite_store

    path = str(tmp_path / "wal.db")
    default = sqlite_store.SQLiteStore(path)
    try:
        wal_pages = default._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert wal_pages == sqlite_store.WAL_CHECKPOINT_PAGES
    finally:
        default.close()
    # A small threshold, so that a few MiB of appends cross it many times.
    monkeypatch.setattr(sqlite_store, "WAL_CHECKPOINT_PAGES", 100)
    store, reader = sqlite_store.SQLiteStore(path), sqlite_store.SQLiteStore(path)
    try:
        page = store._conn.execute("PRAGMA page_size").fetchone()[0]
        sids = [f"s{n}" for n in range(64)]
        heads: dict[str, str | None] = dict.fromkeys(sids)
        written, largest, n = 0, 0, 0
        while written < 10 * 100 * page:
            batch = []
            for i in range(18):
                sid = sids[(n + i) % 64]
                entry = {"type": "user", "uuid": f"u{n + i}", "text": "x" * 600}
                batch.append(AppendRequest(sid, entry, json.dumps(entry), heads[sid]))
                heads[sid] = f"u{n + i}"
                written += 700
            n += 18
            assert all(r.stored for r in store.append_batch(batch))
            largest = max(largest, os.path.getsize(path + "-wal"))
        # 100 pages, plus the frames of the commit that crossed it (a batch
        # of 18 appends dirties fewer than 100 pages)
        assert largest <= 32 + 200 * (page + 24)
        # another connection (as another process would) reads every entry
        for sid in sids:
            assert [json.loads(x)["uuid"] for x in reader.loglines(sid) or []][-1] == heads[sid]
        assert reader.count_events() == n
    finally:
        store.close()
        reader.close()


@pytest.mark.parametrize(
    ("sid", "uuid", "last", "expected"),
    [
        ("s", "x", None, (409, "b", False)),  # the batch takes the session for new: it exists
        ("s", "y", "a", (409, "b", False)),  # a stale Last-Uuid
        ("e", "e1", None, (200, "e1", True)),  # a session that exists with no head yet
        ("m", "m1", "nope", (409, None, False)),  # a Last-Uuid for no session
        ("s", "c", "b", (200, "c", True)),
    ],
)
def test_each_append_of_a_batch_is_decided_from_the_stored_state_not_its_request(
    store: Store, sid: str, uuid: str, last: str | None, expected: tuple[object, ...]
):
    _put(store, "s", "a", None)
    _put(store, "s", "b", "a")
    store.add_event("e", None)

    def req(sid: str, uuid: str, last: str | None) -> AppendRequest:
        entry = {"type": "user", "uuid": uuid}
        return AppendRequest(sid, entry, json.dumps(entry), last)

    results = store.append_batch([req("n", "n1", None), req(sid, uuid, last), req("n", "n2", "n1")])
    assert [(r.status, r.head, r.stored) for r in results] == [
        (201, "n1", True),
        expected,
        (200, "n2", True),
    ]
    stored = expected[2]
    assert [json.loads(x)["uuid"] for x in store.loglines("s") or []] == ["a", "b"] + (
        [uuid] if stored and sid == "s" else []
    )
    assert store.head("s") == ("c" if stored and sid == "s" else "b")
    assert store.head("e") == ("e1" if stored and sid == "e" else None)
    assert not store.exists("m")
    assert store.loglines("n") == [json.dumps({"type": "user", "uuid": u}) for u in ("n1", "n2")]
    listed = {s.id: s.entries for s in store.list_sessions().sessions}
    assert listed == {"n": 2, "s": 2 + (sid == "s" and stored), "e": int(sid == "e")}


def test_a_large_batch_is_stored_in_its_order(store: Store):
    heads: dict[str, str | None] = {}
    batch, order = [], []
    for n in range(150):  # more rows than one INSERT statement takes
        sid = f"s{n * 7 % 5}"
        entry = {"type": "user", "uuid": f"u{n}"}
        batch.append(AppendRequest(sid, entry, json.dumps(entry), heads.get(sid)))
        heads[sid] = f"u{n}"
        order.append((sid, f"u{n}"))
    assert all(r.stored for r in store.append_batch(batch))
    ids = {}
    for sid in heads:
        page = store.events_page(sid, 0, 1000) or []
        assert [json.loads(e.payload or "")["uuid"] for e in page] == [
            u for s, u in order if s == sid
        ]
        ids.update({json.loads(e.payload or "")["uuid"]: e.id for e in page})
    assert sorted(ids.values()) == [ids[u] for _, u in order]  # ids follow the batch's order
    # the session listing is ordered by each session's last entry in the batch
    last_seen = {sid: n for n, (sid, _) in enumerate(order)}
    assert [s.id for s in store.list_sessions().sessions] == sorted(
        last_seen, key=lambda s: -last_seen[s]
    )


def test_event_ids_grow_and_are_never_reused_after_a_delete(store: Store):
    def ids(sid: str) -> list[int]:
        return [e.id for e in store.events_page(sid, 0, 100) or []]

    _put(store, "old", "o1", None)
    _put(store, "new", "n1", None)
    _put(store, "new", "n2", "n1")
    newest = max(ids("new"))
    assert ids("old")[0] < ids("new")[0] < newest
    assert store.delete_session("new")  # the largest ids go with it
    store.add_event("teleport", None)
    _put(store, "again", "a1", None)
    _put(store, "old", "o2", "o1")
    assert newest < ids("teleport")[0] < ids("again")[0] < ids("old")[1]
    assert [s.id for s in store.list_sessions().sessions] == ["old", "again", "teleport"]


def test_each_memory_store_is_its_own_database_and_gone_once_closed():
    first, second = SQLiteStore(":memory:"), SQLiteStore(":memory:")
    try:
        assert first.append("mem-1", {"uuid": "u1"}, '{"uuid": "u1"}', None).status == 201
        assert second.exists("mem-1") is False
        assert second.append("mem-1", {"uuid": "u2"}, '{"uuid": "u2"}', None).status == 201
        assert first.loglines("mem-1") == ['{"uuid": "u1"}']
        assert second.loglines("mem-1") == ['{"uuid": "u2"}']
    finally:
        first.close()
        second.close()
    again = SQLiteStore(":memory:")
    try:
        assert again.exists("mem-1") is False
        assert again.schema_version() == SCHEMA_VERSION
    finally:
        again.close()
