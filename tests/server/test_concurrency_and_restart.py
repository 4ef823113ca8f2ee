"""Two writers never both win; a file database survives restarts."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading

import httpx
import pytest

from ingress_logging.server import IngressServer


def _race(
    srv: IngressServer, sid: str, head: str, clients: list[httpx.Client], tag: str
) -> list[httpx.Response]:
    """One thread per client PUTs a distinct uuid with the same Last-Uuid at once."""
    writers = len(clients)
    barrier = threading.Barrier(writers)
    results: list[httpx.Response | None] = [None] * writers
    headers = {"Authorization": f"Bearer {srv.token}", "Last-Uuid": head}

    def write(i: int) -> None:
        barrier.wait()
        results[i] = clients[i].put(
            srv.session_url(sid), json={"uuid": f"{tag}-w{i}"}, headers=headers
        )

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


@pytest.mark.parametrize("db", ["memory", "file"])
def test_racing_writers_with_the_same_last_uuid_exactly_one_wins(
    ingress_server_factory, tmp_path, db
):
    srv = ingress_server_factory(db=":memory:" if db == "memory" else str(tmp_path / "i.db"))
    srv.append_foreign("race", {"uuid": "root"})
    head = "root"
    clients = [httpx.Client(timeout=10.0) for _ in range(12)]
    try:
        heads = [head]
        for round_ in range(5):
            heads.append(_race_round(srv, clients, heads[-1], f"r{round_}"))
    finally:
        for c in clients:
            c.close()
    stored = [e["uuid"] for e in srv.entries("race")]
    assert stored == heads
    assert srv.head("race") == heads[-1]


def _race_round(srv: IngressServer, clients: list[httpx.Client], head: str, tag: str) -> str:
    """Race once; assert one winner and that every loser was told the winner."""
    responses = _race(srv, "race", head, clients, tag)
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1
    winner_uuid = winners[0].json()["head"]
    losers = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in losers} == {409}
    assert {r.headers["x-last-uuid"] for r in losers} == {winner_uuid}
    return str(winner_uuid)


def test_file_db_survives_restart_on_the_same_port(ingress_server_factory, tmp_path, client):
    path = tmp_path / "ingress.db"
    srv = ingress_server_factory(db=str(path))
    auth = {"Authorization": f"Bearer {srv.token}"}
    assert client.put(srv.session_url("s"), json={"uuid": "a"}, headers=auth).status_code == 201
    port = srv.port
    srv.restart()
    assert srv.port == port
    # the pooled connection was closed by the restart; httpx reconnects
    r = client.put(srv.session_url("s"), json={"uuid": "b"}, headers={**auth, "Last-Uuid": "a"})
    assert r.status_code == 200
    assert client.get(srv.session_url("s"), headers=auth).json()["loglines"] == [
        {"uuid": "a"},
        {"uuid": "b"},
    ]


def test_file_db_is_readable_by_a_new_server_and_uses_wal(ingress_server_factory, tmp_path):
    path = str(tmp_path / "ingress.db")
    first = ingress_server_factory(db=path)
    first.append_foreign("s", {"uuid": "a"})
    first.close()
    second = ingress_server_factory(db=path)
    assert second.entries("s") == [{"uuid": "a"}]
    assert second.head("s") == "a"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_memory_db_keeps_data_across_restart(ingress_server):
    ingress_server.append_foreign("s", {"uuid": "a"})
    ingress_server.restart()
    assert ingress_server.entries("s") == [{"uuid": "a"}]


def test_stopped_server_refuses_connections_and_frees_the_port(ingress_server, client, auth):
    ingress_server.stop()
    with pytest.raises(httpx.ConnectError):
        client.get(ingress_server.session_url("s"), headers=auth)
    ingress_server.start()
    assert client.get(ingress_server.session_url("s"), headers=auth).status_code == 404


def test_stop_closes_idle_keep_alive_connections(ingress_server, client, auth):
    assert client.get(ingress_server.session_url("s"), headers=auth).status_code == 404
    stopped = threading.Event()

    def stop() -> None:
        ingress_server.stop()
        stopped.set()

    threading.Thread(target=stop).start()
    assert stopped.wait(5.0), "stop() hung on an idle keep-alive connection"


def _race_two(a: IngressServer, b: IngressServer, clients, head: str, tag: str) -> list[int]:
    """Half the clients write through ``a``, half through ``b``, all at once."""
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def write(i: int) -> None:
        srv = a if i % 2 else b
        barrier.wait()
        r = clients[i].put(
            srv.session_url("s"),
            json={"uuid": f"{tag}-{i}"},
            headers={"Authorization": "Bearer T", "Last-Uuid": head},
        )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_two_servers_on_one_file_db_never_both_win(ingress_server_factory, tmp_path):
    """BEGIN IMMEDIATE also serialises separate connections (as separate processes would)."""
    path = str(tmp_path / "shared.db")
    a = ingress_server_factory(db=path, token="T")
    b = ingress_server_factory(db=path, token="T")
    a.append_foreign("s", {"uuid": "root"})
    clients = [httpx.Client(timeout=10.0) for _ in range(8)]
    try:
        for round_ in range(3):
            head = a.head("s")
            assert head is not None
            statuses = _race_two(a, b, clients, head, f"r{round_}")
            assert sorted(statuses) == [200] + [409] * (len(clients) - 1)
    finally:
        for c in clients:
            c.close()
    assert len(b.entries("s")) == 4
    assert a.head("s") == b.head("s")


def test_request_records_keep_the_query(ingress_server, client, auth):
    client.get(ingress_server.session_url("s"), headers=auth, params={"after_last_compact": "true"})
    assert ingress_server.requests[-1].query == "after_last_compact=true"


def _raw_put(srv: IngressServer, sid: str, entry_uuid: str, last: str | None) -> bytes:
    body = json.dumps({"uuid": entry_uuid}).encode()
    head = [
        f"PUT /v1/session_ingress/session/{sid} HTTP/1.1",
        "Host: x",
        f"Authorization: Bearer {srv.token}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if last is not None:
        head.append(f"Last-Uuid: {last}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_stop_waits_for_an_append_whose_batch_is_still_in_the_database(
    ingress_server_factory, pg_url, client, wait_for
):
    """A plain append has no task of its own: stopping still waits for its
    commit, its reply leaves only after the commit, and before the close."""
    import psycopg

    srv = ingress_server_factory(db=pg_url)
    auth = {"Authorization": f"Bearer {srv.token}"}
    assert client.put(srv.session_url("s"), json={"uuid": "a"}, headers=auth).status_code == 201
    stopped = threading.Event()

    def stop() -> None:
        srv.stop()
        stopped.set()

    with (
        psycopg.connect(pg_url) as holder,
        psycopg.connect(pg_url, autocommit=True) as watcher,
        socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock,
    ):
        holder.execute("SELECT id FROM sessions WHERE id = 's' FOR UPDATE")
        sock.sendall(_raw_put(srv, "s", "b", "a"))
        waiting = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        wait_for(
            lambda: watcher.execute(waiting).fetchone() == (1,),
            what="the append's batch waiting for the session row",
        )
        stopper = threading.Thread(target=stop)
        stopper.start()
        assert not wait_for(stopped.is_set, timeout=0.3), "stop() did not wait for the commit"
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # no reply before the commit
            sock.recv(1)
        sock.settimeout(10)
        holder.rollback()
        reply = sock.makefile("rb").readline()
        stopper.join(10)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert stopped.is_set()
    srv.start()
    assert [e["uuid"] for e in srv.entries("s")] == ["a", "b"]
