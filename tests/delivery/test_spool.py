"""The spool alone: durability, order, the cap and its policies, the lock, fork, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingress_logging.delivery import DeliveryEngine
from ingress_logging.delivery._spool import SPOOL_DB_NAME, Spool, SpoolStats
from ingress_logging.errors import ConfigError, SpoolLockedError
from ingress_logging.plugins import PluginHost
from ingress_logging.protocol import RetryPolicy
from ingress_logging.server import IngressServer


def body(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"uuid": f"u-{i}", "n": i, "pad": "x" * pad})


def test_append_pending_ack_in_order_across_sessions(tmp_path: Path) -> None:
    with Spool(tmp_path) as sp:
        seqs = [sp.append(f"s{i % 3}", body(i)).seq for i in range(9)]
        assert all(s is not None for s in seqs)
        assert seqs == sorted(seqs)
        rows = sp.pending()
        assert [(r.session_id, orjson.loads(r.entry)["n"]) for r in rows] == [
            (f"s{i % 3}", i) for i in range(9)
        ]
        sp.ack(*(s for s in seqs[:4] if s is not None))
        assert [orjson.loads(r.entry)["n"] for r in sp.pending()] == [4, 5, 6, 7, 8]
        st = sp.stats()
        assert (st.pending, st.written, st.acked) == (5, 9, 4)
        assert st.pending_bytes == sum(len(b"s0") + len(body(i)) for i in range(4, 9))


def test_pending_rows_survive_close_and_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path) as sp:
        keep = [sp.append("a", body(i)).seq for i in range(5)]
        sp.ack(keep[0], keep[2])  # type: ignore[arg-type]
        before = sp.stats().pending_bytes
    with Spool(tmp_path) as sp:
        assert [orjson.loads(r.entry)["n"] for r in sp.pending()] == [1, 3, 4]
        st = sp.stats()
        assert (st.recovered, st.pending, st.pending_bytes) == (3, 3, before)
        # seq keeps growing after a restart: new rows sort after old ones.
        new = sp.append("a", body(9)).seq
        assert new is not None
        assert new > max(r.seq for r in sp.pending() if r.seq != new)


def test_second_spool_on_one_directory_is_refused(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    with pytest.raises(SpoolLockedError, match="in use"):
        Spool(tmp_path)
    sp.close()
    Spool(tmp_path).close()  # free again after close


def test_another_process_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from ingress_logging.delivery._spool import Spool
        from ingress_logging.errors import SpoolLockedError
        try:
            Spool({str(tmp_path)!r})
        except SpoolLockedError as exc:
            print("LOCKED", exc)
        else:
            print("OPENED")
        """
    )
    with Spool(tmp_path):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    assert out.stdout.startswith("LOCKED"), out.stderr
    assert str(tmp_path) in out.stdout
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "OPENED"


def test_drop_newest_refuses_and_counts(tmp_path: Path) -> None:
    size = len(b"s") + len(body(0))
    with Spool(tmp_path, max_bytes=size * 3) as sp:
        results = [sp.append("s", body(i)).seq for i in range(5)]
        assert [r is not None for r in results] == [True, True, True, False, False]
        st = sp.stats()
        assert (st.dropped_full, st.pending, st.pending_bytes) == (2, 3, size * 3)


def test_oversize_entry_is_refused_under_every_policy(tmp_path: Path) -> None:
    for policy in ("drop_newest", "drop_oldest", "block"):
        d = tmp_path / policy
        with Spool(d, max_bytes=100, policy=policy, block_timeout=0) as sp:  # type: ignore[arg-type]
            assert sp.append("s", body(0, pad=200)).seq is None
            assert sp.stats().dropped_full == 1
            assert sp.pending() == []


def test_drop_oldest_evicts_and_reports_the_victims(tmp_path: Path) -> None:
    size = len(b"s") + len(body(0))
    with Spool(tmp_path, max_bytes=size * 3, policy="drop_oldest") as sp:
        first = [sp.append("s", body(i)).seq for i in range(3)]
        w = sp.append("s", body(3))
        assert w.seq is not None
        assert w.evicted == (first[0],)
        assert [orjson.loads(r.entry)["n"] for r in sp.pending()] == [1, 2, 3]
        assert sp.stats().evicted == 1


def test_block_waits_for_an_ack_then_stores(tmp_path: Path) -> None:
    size = len(b"s") + len(body(0))
    with Spool(tmp_path, max_bytes=size, policy="block", block_timeout=30) as sp:
        first = sp.append("s", body(0)).seq
        assert first is not None
        result: list[int | None] = []
        started = threading.Event()

        def writer() -> None:
            started.set()
            result.append(sp.append("s", body(1)).seq)

        t = threading.Thread(target=writer)
        t.start()
        started.wait(5)
        assert result == []  # cannot fit before the ack
        sp.ack(first)
        t.join(10)
        assert result[0] is not None
        assert [orjson.loads(r.entry)["n"] for r in sp.pending()] == [1]


def test_block_gives_up_after_its_timeout(tmp_path: Path) -> None:
    size = len(b"s") + len(body(0))
    with Spool(tmp_path, max_bytes=size, policy="block", block_timeout=0.05) as sp:
        sp.append("s", body(0))
        assert sp.append("s", body(1)).seq is None
        assert sp.stats().dropped_full == 1


def test_engine_seam_accept_replay_acknowledge(tmp_path: Path) -> None:
    entries = [{"uuid": f"u{i}", "parentUuid": f"u{i - 1}" if i else None} for i in range(4)]
    with Spool(tmp_path) as sp:
        keys = [sp.accept("s", e) for e in entries]
        sp.acknowledge(keys[0])
        sp.acknowledge("not-a-key")  # ignored
    with Spool(tmp_path) as sp:
        replayed = sp.replay()
        assert replayed == [("s", e) for e in entries[1:]]
        # Re-accepting what replay handed out writes nothing new.
        again = [sp.accept(sid, e) for sid, e in replayed]
        assert sp.stats().written == 0
        for k in again:
            sp.acknowledge(k)
        assert sp.pending() == []


def test_unreadable_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    with Spool(tmp_path) as sp:
        sp.append("s", b"{not json")
        sp.append("s", b"[1, 2]")
        sp.append("s", body(1))
    with Spool(tmp_path) as sp:
        assert [e["n"] for _, e in sp.replay()] == [1]
        assert sp.stats().unreadable == 2
        assert len(sp.pending()) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": 0},
        {"max_bytes": True},
        {"policy": "drop_everything"},
        {"block_timeout": -1},
        {"synchronous": "OFF"},
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Spool(tmp_path, **kwargs)  # type: ignore[arg-type]
    Spool(tmp_path).close()  # a refused setting leaves no lock behind


def test_unusable_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ConfigError, match="spool directory"):
        Spool(blocker / "sub")


def test_closed_spool_refuses_appends_clearly(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.close()
    sp.close()  # twice is harmless
    assert sp.closed
    with pytest.raises(ConfigError, match="closed"):
        sp.append("s", body(0))
    sp.ack(1)  # acks after close are ignored


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_drops_the_spool_and_the_parent_keeps_its_lock(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.append("s", body(0))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what it sees, then leave without cleanup
        code = 0
        try:
            code |= 0 if sp.closed else 1
            try:
                Spool(tmp_path)
                code |= 2
            except SpoolLockedError:
                pass
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == bytes([0])
    os.waitpid(pid, 0)
    os.close(r)
    # The child closing its copy did not release the parent's lock or data.
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path)
    assert len(sp.pending()) == 1
    sp.close()


def test_kill_9_loses_nothing_that_append_returned(tmp_path: Path) -> None:
    """A child appends and prints each seq after append returned; SIGKILL it
    mid-stream; every printed row is in the spool after a reopen, in order."""
    code = textwrap.dedent(
        f"""
        import sys
        from ingress_logging.delivery._spool import Spool
        sp = Spool({str(tmp_path)!r})
        i = 0
        while True:
            seq = sp.append("s", b'{{"n": %d}}' % i).seq
            sys.stdout.write(f"{{i}}\\n")
            sys.stdout.flush()
            i += 1
        """
    )
    confirmed = -1
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            confirmed = int(line)
            if confirmed >= 300:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        for line in proc.stdout:  # what it printed before dying is confirmed too
            confirmed = int(line)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / SPOOL_DB_NAME).exists()
    with Spool(tmp_path) as sp:
        ns = [orjson.loads(r.entry)["n"] for r in sp.pending()]
    # Every confirmed append survived, in order, once; at most one more
    # (committed, killed before it printed).
    assert ns[: confirmed + 1] == list(range(confirmed + 1))
    assert len(ns) - (confirmed + 1) in (0, 1)


# -- the spool inside the engine (spool_dir=) ----------------------------------


def test_engine_spool_rows_go_once_delivered(
    make_engine: Callable[..., DeliveryEngine], ingress_server: IngressServer, tmp_path: Path
) -> None:
    engine = make_engine(spool_dir=tmp_path)
    for i in range(20):
        assert engine.submit(f"s{i % 2}", {"type": "user", "n": i})
    assert engine.flush(10).pending == 0
    assert engine.stats().delivered == 20
    # Deleted before flush() counted them: nothing is left to replay.
    spool = engine.stats().spool
    assert isinstance(spool, SpoolStats)
    assert (spool.written, spool.acked, spool.pending) == (20, 20, 0)
    assert [e["n"] for e in ingress_server.entries("s0")] == list(range(0, 20, 2))


def test_second_engine_on_one_spool_dir_gets_spool_locked_error(
    make_engine: Callable[..., DeliveryEngine], tmp_path: Path
) -> None:
    first = make_engine(spool_dir=tmp_path)
    with pytest.raises(SpoolLockedError):
        make_engine(spool_dir=tmp_path)
    first.close(1)
    make_engine(spool_dir=tmp_path)  # released by close()


def test_entries_left_at_close_are_delivered_by_the_next_engine_in_order(
    make_engine: Callable[..., DeliveryEngine], ingress_server: IngressServer, tmp_path: Path
) -> None:
    ingress_server.faults.fail_share(1.0)  # the server is down for the first engine
    patient = RetryPolicy(max_attempts=1000, base_delay=0.001, max_delay=0.01)
    first = make_engine(spool_dir=tmp_path, retry_policy=patient)
    for i in range(10):
        assert first.submit("s", {"type": "user", "n": i})
    first.close(0.05)  # gives up: the queued entries are counted "closed" ...
    assert first.stats().dropped_by_reason.get("closed", 0) >= 9
    assert ingress_server.entries("s") == []  # ... but their rows stay on disk
    ingress_server.faults.fail_share(0)
    second = make_engine(spool_dir=tmp_path)
    assert second.flush(10).pending == 0
    entries = ingress_server.entries("s")
    assert [e["n"] for e in entries] == list(range(10))
    uuids = [e["uuid"] for e in entries]
    assert [e["parentUuid"] for e in entries[1:]] == uuids[:-1]


def test_disk_cap_refuses_counts_and_keeps_the_rest(
    make_engine: Callable[..., DeliveryEngine], ingress_server: IngressServer, tmp_path: Path
) -> None:
    ingress_server.faults.fail_share(1.0)  # nothing is acknowledged: the spool fills
    engine = make_engine(
        spool_dir=tmp_path,
        spool_max_bytes=4000,
        retry_policy=RetryPolicy(max_attempts=1000, base_delay=0.001, max_delay=0.01),
    )
    accepted = [engine.submit("s", {"type": "user", "n": i, "pad": "x" * 300}) for i in range(30)]
    refused = accepted.count(False)
    assert 0 < refused < 30
    assert accepted == sorted(accepted, reverse=True)  # drop_newest: a prefix is kept
    assert engine.stats().dropped_by_reason.get("spool_full") == refused
    ingress_server.faults.fail_share(0)
    assert engine.flush(10).pending == 0
    kept = [e for e in ingress_server.entries("s") if e.get("type") == "user"]
    assert [e["n"] for e in kept] == list(range(30 - refused))


def test_entries_evicted_from_memory_leave_the_spool_too(
    make_engine: Callable[..., DeliveryEngine], ingress_server: IngressServer, tmp_path: Path
) -> None:
    """drop_oldest evicts queued entries: their rows must go, or the next start
    would deliver them after the newer entries this run delivered."""
    ingress_server.faults.fail_share(1.0)
    patient = RetryPolicy(max_attempts=1000, base_delay=0.001, max_delay=0.01)
    engine = make_engine(
        spool_dir=tmp_path, overflow="drop_oldest", max_queue_entries=3, retry_policy=patient
    )
    for i in range(10):
        assert engine.submit("s", {"type": "user", "n": i})
    evicted = engine.stats().dropped_by_reason.get("evicted", 0)
    assert evicted >= 6
    spool = engine.stats().spool
    assert isinstance(spool, SpoolStats)
    assert spool.pending == 10 - evicted
    engine.close(0.05)
    ingress_server.faults.fail_share(0)
    second = make_engine(spool_dir=tmp_path)
    assert second.flush(10).pending == 0
    ns = [e["n"] for e in ingress_server.entries("s") if e.get("type") == "user"]
    assert ns == sorted(ns)
    assert len(ns) == 10 - evicted


def test_a_damaged_database_is_a_clear_error_and_leaves_no_lock(tmp_path: Path) -> None:
    (tmp_path / SPOOL_DB_NAME).write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(ConfigError, match="cannot open spool database"):
        Spool(tmp_path)
    # The lock was released: once the file is moved aside the directory works.
    (tmp_path / SPOOL_DB_NAME).rename(tmp_path / "damaged.sqlite3")
    Spool(tmp_path).close()


def test_spool_files_are_owner_only(tmp_path: Path) -> None:
    d = tmp_path / "new-spool"
    with Spool(d) as sp:
        sp.append("s", body(0))
        modes = {p.name: p.stat().st_mode & 0o777 for p in d.iterdir()}
    assert d.stat().st_mode & 0o777 == 0o700
    assert modes[SPOOL_DB_NAME] == 0o600
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes


def test_a_failing_disk_refuses_and_counts_never_raises(tmp_path: Path) -> None:
    with Spool(tmp_path) as sp:
        kept = sp.append("s", body(0)).seq
        assert kept is not None
        assert sp._conn is not None
        sp._conn.execute("PRAGMA query_only=1")  # every write now fails, like a full disk
        assert sp.append("s", body(1)).seq is None
        assert sp.accept("s", {"uuid": "u2"}) is None
        sp.ack(kept)  # the DELETE fails: the row stays (a later replay is harmless)
        st = sp.stats()
        assert (st.write_errors, st.pending, st.acked) == (3, 1, 0)
        sp._conn.execute("PRAGMA query_only=0")
        sp.ack(kept)
        assert sp.stats().pending == 0


class CountingHost(PluginHost):
    """Marks each entry with how many times ``prepare_entry`` ran on it."""

    def prepare_entry(self, entry: dict[str, Any], record: object) -> dict[str, Any] | None:
        entry["prepared"] = entry.get("prepared", 0) + 1
        return super().prepare_entry(entry, record)


def test_replayed_entries_are_not_prepared_twice(
    make_engine: Callable[..., DeliveryEngine], ingress_server: IngressServer, tmp_path: Path
) -> None:
    """A redaction plugin runs once per entry: at submit, not again at replay."""

    def host() -> CountingHost:
        return CountingHost(base_api_url=ingress_server.base_url, token=ingress_server.token)

    ingress_server.faults.fail_share(1.0)
    patient = RetryPolicy(max_attempts=1000, base_delay=0.001, max_delay=0.01)
    first = make_engine(host=host(), spool_dir=tmp_path, retry_policy=patient)
    for i in range(5):
        assert first.submit("s", {"type": "user", "n": i})
    first.close(0.05)
    ingress_server.faults.fail_share(0)
    second = make_engine(host=host(), spool_dir=tmp_path)
    assert second.flush(10).pending == 0
    entries = ingress_server.entries("s")
    assert [e["n"] for e in entries] == list(range(5))
    assert [e["prepared"] for e in entries] == [1] * 5


def test_a_spooled_row_with_an_impossible_session_id_is_counted_not_sent(
    make_engine: Callable[..., DeliveryEngine], ingress_server: IngressServer, tmp_path: Path
) -> None:
    with Spool(tmp_path) as sp:
        sp.append("../../etc", orjson.dumps({"type": "user", "uuid": "u-bad"}))
        sp.append("ok", orjson.dumps({"type": "user", "uuid": "u-ok", "parentUuid": None}))
    engine = make_engine(spool_dir=tmp_path)
    assert engine.flush(10).pending == 0
    health = engine.stats()
    assert health.dropped_by_reason == {"build_error": 1}
    assert [e["uuid"] for e in ingress_server.entries("ok")] == ["u-ok"]
    assert isinstance(health.spool, SpoolStats)
    assert health.spool.pending == 0


def test_handler_with_spool_dir_survives_a_lost_run(
    ingress_server: IngressServer, tmp_path: Path
) -> None:
    """``IngressHandler(..., spool_dir=...)``: what a run could not deliver is
    delivered, in order, by the next handler on the same directory."""
    import logging

    from ingress_logging import IngressHandler

    def handler() -> IngressHandler:
        return IngressHandler(
            base_api_url=ingress_server.base_url,
            token=ingress_server.token,
            session_id="logged",
            spool_dir=str(tmp_path),
            retry_policy=RetryPolicy(max_attempts=1000, base_delay=0.001, max_delay=0.01),
        )

    log = logging.getLogger("tests.spool.handler")
    log.propagate = False
    log.setLevel(logging.INFO)
    ingress_server.faults.fail_share(1.0)
    first = handler()
    log.addHandler(first)
    for i in range(5):
        log.info("line %d", i)
    log.removeHandler(first)
    first.engine.close(0.05)  # type: ignore[attr-defined]
    assert ingress_server.entries("logged") == []
    ingress_server.faults.fail_share(0)
    second = handler()  # a new shared engine on the same directory replays
    try:
        assert second.engine.flush(10).pending == 0
    finally:
        second.engine.close(1)  # type: ignore[attr-defined]
    contents = [e["content"] for e in ingress_server.entries("logged")]
    assert contents == [f"line {i}" for i in range(5)]
