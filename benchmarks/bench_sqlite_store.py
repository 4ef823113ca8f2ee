"""CPU per append of the SQLite store, beside a baseline revision in the same run.

The workload is the group commit's typical batch in ``bench_server.py``: batches
of ``--batch`` appends (default 18), each to a different session picked from
``--sessions`` (64), chained by Last-Uuid, with a bench_server-sized entry. The
requests are built before the clock starts, so only ``append_batch`` is timed
(CPU seconds of the process, pinned to one CPU). Each measurement runs in its
own subprocess, on a fresh database, alternating baseline and current for
``--rounds`` rounds; the fastest round of each is printed (the one least
disturbed by other work on the machine), with the ratio.

After the appends, the same subprocess times the reads a viewer or a teleport
client makes: ``loglines`` of every session, and its ``events_page`` pages of
100, so that a schema or layout change cannot make reads slower unseen.

Usage: ``.venv/bin/python benchmarks/bench_sqlite_store.py [--baseline-rev REV]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = "benchmark payload " * 20


def _entry(sid: str, entry_uuid: str, parent: str | None) -> str:
    return json.dumps(
        {
            "uuid": entry_uuid,
            "parentUuid": parent,
            "sessionId": sid,
            "type": "assistant",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "isSidechain": False,
            "userType": "external",
            "cwd": "/home/user/project",
            "version": "1.0.0",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": TEXT}],
                "usage": {"input_tokens": 3, "output_tokens": 365},
            },
        }
    )


def child(db: str, appends: int, batch: int, sessions: int, cpu: int) -> None:
    """Time the store of whatever ``ingress_logging`` is on the path; print JSON."""
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})
    from ingress_logging.server.store import AppendRequest
    from ingress_logging.server.store.sqlite import SQLiteStore

    rng = random.Random(14)
    sids = [f"bench-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}" for _ in range(sessions)]
    heads: dict[str, str | None] = dict.fromkeys(sids)
    batches = []
    for _ in range(appends // batch):
        requests = []
        for sid in rng.sample(sids, batch):
            u, head = str(uuid.UUID(int=rng.getrandbits(128))), heads[sid]
            text = _entry(sid, u, head)
            requests.append(AppendRequest(sid, json.loads(text), text, head))
            heads[sid] = u
        batches.append(requests)
    store = SQLiteStore(db)
    warm = len(batches) // 10
    for requests in batches[:warm]:
        store.append_batch(requests)
    cpu0 = time.process_time()
    for requests in batches[warm:]:
        store.append_batch(requests)
    spent = time.process_time() - cpu0
    timed = (len(batches) - warm) * batch
    cpu0 = time.process_time()
    entries = 0
    for sid in sids:
        lines = store.loglines(sid)
        assert lines is not None
        entries += len(lines)
    logline_cost = (time.process_time() - cpu0) / entries
    cpu0 = time.process_time()
    events = 0
    for sid in sids:
        after = 0
        while page := store.events_page(sid, after, 100):
            events += len(page)
            after = page[-1].id
    page_cost = (time.process_time() - cpu0) / events
    assert entries == events == len(batches) * batch, (entries, events)
    store.close()
    print(
        json.dumps(
            {"append": spent / timed * 1e6, "loglines": logline_cost * 1e6, "page": page_cost * 1e6}
        )
    )


def run(env: dict[str, str], db: str, args: argparse.Namespace, cpu: int) -> dict[str, float]:
    if db != ":memory:":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
    sizes = ["--appends", str(args.appends), "--batch", str(args.batch)]
    sizes += ["--sessions", str(args.sessions), "--cpu", str(cpu)]
    out = subprocess.run(
        [sys.executable, __file__, "--child", db, *sizes],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="8778c3d", help="git rev to compare with")
    parser.add_argument("--appends", type=int, default=36000, help="per measurement")
    parser.add_argument("--batch", type=int, default=18)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.appends, args.batch, args.sessions, args.cpu)
        return 0
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    print(
        f"{args.appends} appends in batches of {args.batch} over {args.sessions} sessions,"
        f" pinned to CPU {cpus[-1]}; fastest of {args.rounds} rounds; µs of CPU"
    )
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "baseline")
        os.makedirs(target)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline_rev, "ingress_logging"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
        envs = {
            "baseline": {**os.environ, "PYTHONPATH": target},
            "current": {**os.environ, "PYTHONPATH": str(ROOT)},
        }
        for name, db in (("memory", ":memory:"), ("file-wal", os.path.join(tmp, "b.db"))):
            samples: dict[str, list[dict[str, float]]] = {label: [] for label in envs}
            for _ in range(args.rounds):
                for label, env in envs.items():
                    samples[label].append(run(env, db, args, cpus[-1]))
            med = {
                label: {k: min(s[k] for s in runs) for k in runs[0]}
                for label, runs in samples.items()
            }
            base, cur = med["baseline"], med["current"]
            print(
                f"{name:8s} per append: baseline {base['append']:5.1f}, current"
                f" {cur['append']:5.1f} = {base['append'] / cur['append']:.2f}x less CPU"
                f" | per entry read: loglines {base['loglines']:.2f} -> {cur['loglines']:.2f},"
                f" events_page {base['page']:.2f} -> {cur['page']:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
