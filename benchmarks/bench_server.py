"""Sustained PUT rate of the local session-ingress server.

Runs ``python -m ingress_logging.server`` in a subprocess pinned to one CPU
(where the OS allows it) and drives it over keep-alive connections from
client threads in this process (pinned to another CPU), with real Last-Uuid
chaining. Two shapes, each on an in-memory and a file (WAL) database:

* one session: strictly sequential appends (the protocol allows one request
  in flight per session), so this is the per-session ceiling;
* many sessions: several client threads, each chaining its own sessions.

Usage: ``.venv/bin/python benchmarks/bench_server.py [--seconds 2.5]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

TOKEN = "bench-token"
PATH = "/v1/session_ingress/session/"


def _entry(session_id: str, entry_uuid: str, parent: str | None) -> bytes:
    """A transcript-shaped assistant message of about 600 bytes (synthetic text)."""
    return json.dumps(
        {
            "type": "assistant",
            "uuid": entry_uuid,
            "parentUuid": parent,
            "sessionId": session_id,
            "timestamp": "2026-01-01T00:00:00.000Z",
            "isSidechain": False,
            "userType": "external",
            "cwd": "/home/user/project",
            "version": "1.0.0",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "benchmark payload " * 20}],
                "usage": {"input_tokens": 3, "output_tokens": 365},
            },
        }
    ).encode()


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def start_server(db: str, cpu: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingress_logging.server",
            "--port",
            "0",
            "--db",
            db,
            "--token",
            TOKEN,
        ],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: _pin(cpu),
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(match.group(1))


def _worker(port: int, sessions: list[str], deadline: float, out: list[float], errors: list[str]):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    heads: dict[str, str | None] = dict.fromkeys(sessions)
    i = 0
    try:
        while time.monotonic() < deadline:
            sid = sessions[i % len(sessions)]
            i += 1
            entry_uuid = str(uuid.uuid4())
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            if heads[sid] is not None:
                headers["Last-Uuid"] = heads[sid]
            t0 = time.perf_counter()
            conn.request("PUT", PATH + sid, _entry(sid, entry_uuid, heads[sid]), headers)
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t0)
            if resp.status not in (200, 201):
                errors.append(f"{resp.status}")
                return
            heads[sid] = entry_uuid
    finally:
        conn.close()


def run(port: int, sessions: int, workers: int, seconds: float) -> dict[str, float]:
    names = [f"bench-{uuid.uuid4().hex[:8]}-{n}" for n in range(sessions)]
    per_worker = [names[w::workers] for w in range(workers)]
    latencies: list[list[float]] = [[] for _ in range(workers)]
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    start = time.monotonic()
    threads = [
        threading.Thread(target=_worker, args=(port, per_worker[w], deadline, latencies[w], errors))
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    if errors:
        raise RuntimeError(f"unexpected statuses: {errors[:5]}")
    flat = sorted(x for lat in latencies for x in lat)
    return {
        "entries": len(flat),
        "rate": len(flat) / elapsed,
        "p50_ms": statistics.median(flat) * 1000,
        "p99_ms": flat[int(len(flat) * 0.99) - 1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="per scenario")
    parser.add_argument("--sessions", type=int, default=200, help="for the many-sessions run")
    parser.add_argument("--workers", type=int, default=4, help="client threads, many sessions")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    server_cpu, client_cpu = cpus[0], cpus[-1]
    print(
        f"server pinned to CPU {server_cpu}, client threads to CPU {client_cpu}"
        f" ({len(cpus)} CPUs visible); {args.seconds:g} s per scenario"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for db_name, db in (("memory", ":memory:"), ("file-wal", os.path.join(tmp, "b.db"))):
            proc, port = start_server(db, server_cpu)
            _pin(client_cpu)
            try:
                run(port, 1, 1, 0.3)  # warm-up
                for label, sessions, workers in (
                    ("1 session ", 1, 1),
                    (f"{args.sessions} sessions", args.sessions, args.workers),
                ):
                    r = run(port, sessions, workers, args.seconds)
                    print(
                        f"{db_name:8s} {label:13s} {r['rate']:8.0f} entries/s"
                        f"  (n={r['entries']:.0f}, p50 {r['p50_ms']:.2f} ms,"
                        f" p99 {r['p99_ms']:.2f} ms, {workers} client thread(s))"
                    )
            finally:
                proc.terminate()
                proc.communicate(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
