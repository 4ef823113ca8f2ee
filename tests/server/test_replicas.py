"""Two server processes on one PostgreSQL: the compare-and-set is the database's.

Two ``python -m ingress_logging.server`` processes share one database. Two
delivery engines - one per server - write into the same 20 sessions at once
from 8 threads while both servers inject faults (a 5 % share of 503s, lost
replies after commit, 500s after commit). Every Last-Uuid race between the
replicas is a 409 naming the winner's head, which the loser adopts. Afterwards
every submitted entry is stored exactly once, each writer's entries of a
session in its submission order, and the stored chain is the order of the rows.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from ingress_logging import RetryPolicy
from ingress_logging.delivery import DeliveryEngine
from ingress_logging.server.store import open_store

N = int(os.environ.get("REPLICAS_N", "3000"))
SESSIONS = 20
THREADS = 8
FAULTS = (
    '{"fail_share": {"share": 0.05, "status": 503, "seed": %d},'
    ' "script": {"steps": ["drop", null, "error_after_commit", null, null, "drop", null]}}'
)


@pytest.fixture
def replicas(pg_url: str) -> Iterator[list[str]]:
    procs, urls = [], []
    try:
        for seed in (1, 2):
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "ingress_logging.server", "--port", "0",
                    "--db", pg_url, "--token", "T", "--no-access-log",
                    "--faults", FAULTS % seed,
                ],
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            procs.append(proc)
            assert proc.stderr is not None
            line = proc.stderr.readline()
            match = re.search(r"http://127\.0\.0\.1:\d+", line)
            assert match, line
            urls.append(match.group(0))
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=30)
            assert proc.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_replicas_on_one_postgres_store_every_entry_once(replicas, pg_url):
    policy = RetryPolicy(max_attempts=1000, base_delay=0.001, max_delay=0.02)
    engines = [
        DeliveryEngine(
            base_api_url=url,
            token="T",
            retry_policy=policy,
            max_queue_entries=N + 1,
            max_queue_bytes=1 << 30,
            max_concurrency=4,
            timeout=10,
        )
        for url in replicas
    ]
    sids = [f"replica-{k:02d}" for k in range(SESSIONS)]
    submitted: dict[tuple[int, str], list[int]] = collections.defaultdict(list)
    lock = threading.Lock()

    def submitter(t: int) -> None:
        rng = random.Random(t)
        writer = t % 2  # half the threads write through each replica
        for i in range(N // THREADS):
            sid = sids[rng.randrange(SESSIONS)]
            with lock:  # per (writer, session) the list order is the submission order
                assert engines[writer].submit(sid, {"type": "user", "w": writer, "i": t * N + i})
                submitted[(writer, sid)].append(t * N + i)

    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for engine in engines:
        result = engine.flush(240)
        assert (result.failed, result.dropped, result.pending) == (0, 0, 0), result
        engine.close(10)

    # the races and the faults really happened, on both replicas
    conflicts = dropped = 0
    for url in replicas:
        text = httpx.get(url + "/metrics").text
        conflicts += int(re.search(r"^ingress_conflicts_total (\d+)$", text, re.M).group(1))
        found = re.search(r'^ingress_appends_total\{status="dropped"\} (\d+)$', text, re.M)
        dropped += int(found.group(1)) if found else 0
    assert conflicts > 0
    assert dropped == 4  # two scripted drops per replica

    store = open_store(pg_url)
    try:
        total = 0
        for sid in sids:
            rows = [json.loads(x) for x in store.loglines(sid) or []]
            rows = [r for r in rows if r.get("type") == "user"]  # no gap entries expected
            total += len(rows)
            uuids = [r["uuid"] for r in rows]
            assert len(uuids) == len(set(uuids)), f"{sid}: an entry stored twice"
            for writer in (0, 1):
                mine = [r["i"] for r in rows if r["w"] == writer]
                assert mine == submitted[(writer, sid)], f"{sid}: writer {writer} order"
        assert total == N // THREADS * THREADS
    finally:
        store.close()
