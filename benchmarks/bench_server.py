"""Sustained append rate of the server, beside the baseline and the store's own limit.

Runs ``python -m ingress_logging.server`` in a subprocess pinned to one CPU
and drives it from this process (pinned to another CPU) with a raw-socket
client: many keep-alive connections on one ``selectors`` loop, one request in
flight per connection, real Last-Uuid chaining. The client builds requests
from bytes templates so that it stays cheaper than the server it measures
(``http.client`` tops out below the server's rate on one core).

In the same run, for the same workload:

* the baseline: the stdlib ``http.server`` server of ``--baseline-rev``
  (extracted with ``git archive`` into a temporary directory), measured in
  ``--rounds`` rounds alternating with the server's; the best round of each
  (the one least disturbed by the rest of the machine: a virtual machine's
  rate swings by a third from one minute to the next) gives the ratio, and
  the round-by-round ratios are printed beside it;
* the store alone: ``store.append`` called in a loop, in process, with no
  HTTP, and ``store.append_batch`` with one append per session (the group
  commit's batches when every connection has a request ready): the ceiling
  for any HTTP layer on that store;
* the HTTP stack alone: the same runner and connections with an app that
  stores nothing (``_trivial_server.py``), the ceiling of the HTTP layer;
* the server with a store that stores nothing (``_null_store_server.py``):
  everything of the server but the database, so the difference to the line
  above is the server's own work per append (routes, checks, group commit,
  metrics, replies);
* with ``--pg URL``: PostgreSQL with 1 and 2 worker processes, and its store alone.

Usage: ``.venv/bin/python benchmarks/bench_server.py [--seconds 3] [--rounds 3] [--pg postgresql://...]``
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

TOKEN = "bench-token"
ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = (
    b'"type": "assistant", "timestamp": "2026-01-01T00:00:00.000Z", "isSidechain": false,'
    b' "userType": "external", "cwd": "/home/user/project", "version": "1.0.0",'
    b' "message": {"role": "assistant", "content": [{"type": "text", "text": "'
    + b"benchmark payload " * 20
    + b'"}], "usage": {"input_tokens": 3, "output_tokens": 365}}'
)


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def _body(sid: bytes, entry_uuid: bytes, parent: bytes | None) -> bytes:
    parent_json = b"null" if parent is None else b'"' + parent + b'"'
    return (
        b'{"uuid": "' + entry_uuid + b'", "parentUuid": ' + parent_json
        + b', "sessionId": "' + sid + b'", ' + PAYLOAD + b"}"
    )  # fmt: skip


def _request(sid: bytes, entry_uuid: bytes, parent: bytes | None) -> bytes:
    body = _body(sid, entry_uuid, parent)
    last = b"" if parent is None else b"Last-Uuid: " + parent + b"\r\n"
    return (
        b"PUT /v1/session_ingress/session/" + sid + b" HTTP/1.1\r\nHost: bench\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
        + last + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


class _Conn:
    def __init__(self, port: int, sessions: list[bytes]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.sessions = sessions
        #: The uuid last sent per session: the next append chains onto it (a reply
        #: other than 200/201 ends the run, so sent and stored never differ).
        self.heads: dict[bytes, bytes | None] = dict.fromkeys(sessions)
        self.turn = 0
        self.buf = b""

    def send_next(self) -> None:
        sid = self.sessions[self.turn % len(self.sessions)]
        self.turn += 1
        entry_uuid = uuid.uuid4().hex.encode()
        parent, self.heads[sid] = self.heads[sid], entry_uuid
        self.sock.sendall(_request(sid, entry_uuid, parent))

    def on_readable(self) -> list[int]:
        """The statuses of the replies now whole, in order."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed a connection")
        self.buf += chunk
        statuses = []
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end]
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            if len(self.buf) < end + 4 + length:
                break
            self.buf = self.buf[end + 4 + length :]
            statuses.append(int(head[9:12]))
        return statuses


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(
    proc: subprocess.Popen[str], port: int, sessions: int, seconds: float, window: int = 1
) -> tuple[float, float]:
    """(appends per wall second, appends per server CPU second)."""
    drive(port, 4, 4, 0.3)  # warm-up
    before = cpu_seconds(proc.pid)
    started = time.perf_counter()
    count = drive(port, sessions, sessions, seconds, window) * seconds
    wall = time.perf_counter() - started
    used = cpu_seconds(proc.pid) - before
    return count / wall, count / max(used, 1e-9)


def drive(port: int, sessions: int, connections: int, seconds: float, window: int = 1) -> float:
    """Appends per second over ``connections`` keep-alive connections, each
    keeping ``window`` chained appends in flight (pipelined when above 1)."""
    names = [f"b{uuid.uuid4().hex[:8]}-{n}".encode() for n in range(sessions)]
    conns = [_Conn(port, names[c::connections]) for c in range(min(connections, sessions))]
    sel = selectors.DefaultSelector()
    for conn in conns:
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        for _ in range(window):
            conn.send_next()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while True:
            now = time.perf_counter()
            if now >= deadline:
                break
            for key, _ in sel.select(timeout=deadline - now):
                conn = key.data
                for status in conn.on_readable():
                    if status not in (200, 201):
                        raise RuntimeError(f"unexpected status {status}")
                    done += 1
                    conn.send_next()
        return done / (time.perf_counter() - start)
    finally:
        for conn in conns:
            conn.sock.close()
        sel.close()


def start_server(db: str, cpu: int | None, *, workers: int = 1, env: dict[str, str] | None = None):
    if db == "trivial":
        args = [sys.executable, str(Path(__file__).with_name("_trivial_server.py"))]
        return _started(args, cpu, None)
    if db == "null":
        args = [sys.executable, str(Path(__file__).with_name("_null_store_server.py")), TOKEN]
        return _started(args, cpu, None)
    args = [sys.executable, "-m", "ingress_logging.server", "--port", "0", "--db", db]
    args += ["--token", TOKEN]
    if workers > 1:
        args += ["--workers", str(workers)]
    if env is None:  # today's server: no access log while measuring
        args += ["--no-access-log"]
    return _started(args, cpu, env)


def _started(args: list[str], cpu: int | None, env: dict[str, str] | None):
    proc = subprocess.Popen(
        args,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=None if env is None else env["PYTHONPATH"],
        preexec_fn=None if cpu is None else (lambda: _pin(cpu)),
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()[-500:]}")
    return proc, int(match.group(1))


def baseline_env(rev: str, tmp: str) -> dict[str, str] | None:
    """A PYTHONPATH holding the package as of ``rev`` (the stdlib server)."""
    target = os.path.join(tmp, "baseline")
    os.makedirs(target)
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "ingress_logging"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"baseline unavailable ({exc}); ratios are not printed")
        return None
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    return {**os.environ, "PYTHONPATH": target}


def store_rate(db: str, seconds: float, threads: int = 1, *, batch: int = 1) -> float:
    """``store.append_batch`` alone, chained, over ``threads`` threads (no HTTP), each
    call ``batch`` appends to as many sessions; per CPU second of this process (one
    thread) or per wall second (several)."""
    sys.path.insert(0, str(ROOT))
    from ingress_logging.server.store import AppendRequest, open_store

    store = open_store(db)
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def loop(t: int) -> None:
        sids = [f"raw-{uuid.uuid4().hex[:8]}" for _ in range(batch)]
        heads: dict[str, str | None] = dict.fromkeys(sids)
        while time.perf_counter() < deadline:
            requests = []
            for sid in sids:
                u, head = uuid.uuid4().hex, heads[sid]
                text = _body(sid.encode(), u.encode(), None if head is None else head.encode())
                entry = {"uuid": u, "type": "assistant"}
                requests.append(AppendRequest(sid, entry, text.decode(), head))
                heads[sid] = u
            assert all(r.stored for r in store.append_batch(requests))
            counts[t] += batch

    start, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    spent = time.process_time() - cpu if threads == 1 else time.perf_counter() - start
    rate = sum(counts) / spent
    store.close()
    return rate


def compare(
    db: str,
    name: str,
    window: int,
    base_env: dict[str, str] | None,
    server_cpu: int,
    batched: float,
    args: argparse.Namespace,
) -> None:
    """The server beside the baseline on ``db``, alternated for ``args.rounds`` rounds."""
    rates: dict[str, list[float]] = {}  # per server CPU second: the "one core" rate
    walls: dict[str, list[float]] = {}
    labels = [("baseline", base_env), ("server", None)] if base_env else [("server", None)]
    for _round in range(args.rounds):  # alternated, so drift hits both alike
        for label, env in labels:
            if db != ":memory:" and os.path.exists(db):
                os.remove(db)
            proc, port = start_server(db, server_cpu, env=env)
            try:
                wall, per_cpu = measure(proc, port, args.sessions, args.seconds, window)
            finally:
                proc.terminate()
                proc.communicate(timeout=10)
            rates.setdefault(label, []).append(per_cpu)
            walls.setdefault(label, []).append(wall)
    best = {label: max(values) for label, values in rates.items()}
    ratio = base = ""
    if "baseline" in best:
        pairs = [s / b for s, b in zip(rates["server"], rates["baseline"], strict=True)]
        ratio = (
            f" = {best['server'] / best['baseline']:.2f}x baseline"
            f" (round by round {min(pairs):.2f}x-{max(pairs):.2f}x)"
        )
        base = f"baseline {best['baseline']:6.0f}, "
    flight = "1 append in flight" if window == 1 else f"{window} chained appends in flight"
    print(
        f"sqlite {name:8s} {flight} per session, per server CPU-second, best of {args.rounds}:"
        f" {base}server {best['server']:6.0f}{ratio}"
        f" ({best['server'] / batched:.0%} of the batched store);"
        f" wall: " + ", ".join(f"{k} {max(v):.0f}/s" for k, v in walls.items())
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="baseline and server alternated, best of each kept"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=16,
        help="chained appends in flight per session in the pipelined comparison"
        " (16: the delivery engine's default window)",
    )
    parser.add_argument("--sessions", type=int, default=64, help="sessions (and connections)")
    parser.add_argument("--baseline-rev", default="248d0c2", help="git rev of the stdlib server")
    parser.add_argument("--pg", default=os.environ.get("INGRESS_LOGGING_TEST_PG"), help="libpq URL")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    server_cpu, client_cpu = cpus[0], cpus[-1]
    print(
        f"server pinned to CPU {server_cpu}, client to CPU {client_cpu} ({len(cpus)} CPUs);"
        f" {args.sessions} sessions over {args.sessions} connections; {args.seconds:g} s each"
    )
    _pin(client_cpu)
    with tempfile.TemporaryDirectory() as tmp:
        base_env = baseline_env(args.baseline_rev, tmp)
        alone: dict[str, float] = {}
        for which in ("trivial", "null"):
            proc, port = start_server(which, server_cpu)
            try:
                _wall, alone[which] = measure(proc, port, args.sessions, args.seconds)
            finally:
                proc.terminate()
                proc.communicate(timeout=10)
        stack, null = alone["trivial"], alone["null"]
        print(
            f"HTTP stack alone (an app that stores nothing): {stack:6.0f} per server CPU-second"
            f" ({1e6 / stack:.0f} us per request)"
        )
        print(
            f"server with a store that stores nothing:      {null:6.0f} per server CPU-second"
            f" ({1e6 / null:.0f} us per append, {1e6 / null - 1e6 / stack:.0f} us above the stack)"
        )
        for name, db in (("memory", ":memory:"), ("file-wal", os.path.join(tmp, "b.db"))):
            raw_db = db if db == ":memory:" else os.path.join(tmp, "raw.db")
            raw = store_rate(raw_db, args.seconds)
            if raw_db != ":memory:":
                os.remove(raw_db)
            batched = store_rate(raw_db, args.seconds, batch=args.sessions)
            print(
                f"sqlite {name}: store alone {raw:6.0f} appends per CPU-second,"
                f" in batches of {args.sessions} {batched:6.0f}"
            )
            for window in sorted({1, args.window}):
                compare(db, name, window, base_env, server_cpu, batched, args)
        if args.pg:
            from urllib.parse import urlsplit

            import psycopg

            dbname = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{dbname}"')
                try:
                    url = urlsplit(args.pg)._replace(path=f"/{dbname}").geturl()
                    for workers in (1, 2):
                        proc, port = start_server(url, None, workers=workers)
                        try:
                            wall, per_cpu = measure(proc, port, args.sessions, args.seconds)
                        finally:
                            proc.terminate()
                            proc.communicate(timeout=20)
                        print(
                            f"postgres {workers} worker(s), unpinned: {wall:6.0f}/s wall,"
                            f" {per_cpu:6.0f} per server CPU-second"
                        )
                    for threads, batch in ((1, 1), (8, 1), (1, args.sessions)):
                        raw = store_rate(url, args.seconds, threads, batch=batch)
                        print(
                            f"postgres store alone, {threads} thread(s), batches of {batch}:"
                            f" {raw:7.0f}/s"
                        )
                finally:
                    admin.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
