"""Two processes append to one session at the same time.

Each writer is a real child process with its own ``SessionIngressClient``
(blocking appends) or ``DeliveryEngine`` (background delivery) and its own
uuid chain; both start on one signal and race for the chain head. The
server's optimistic concurrency (Last-Uuid) turns every lost race into a 409
naming the new head, which the writer adopts and retries. Afterwards the
session holds every entry of both exactly once, and each writer's entries in
that writer's own order. Size: ``RELIABILITY_TWO_WRITERS_N`` entries per
writer (default 300).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ingress_logging.server import IngressServer

N = int(os.environ.get("RELIABILITY_TWO_WRITERS_N", "300"))

WRITER = textwrap.dedent(
    """
    import json, sys, uuid
    from ingress_logging import RetryPolicy, SessionIngressClient
    from ingress_logging.delivery import DeliveryEngine

    base, sid, name, n, mode = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    policy = RetryPolicy(max_attempts=200, base_delay=0.001, max_delay=0.01)
    uuids, failed, parent = [], 0, None
    if mode == "client":
        client = SessionIngressClient(base_api_url=base, retry_policy=policy)
    else:
        engine = DeliveryEngine(base_api_url=base, retry_policy=policy)
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    sys.stdin.readline()  # the start signal, sent to both writers at once
    for i in range(n):
        u = str(uuid.uuid4())
        entry = {"type": "user", "uuid": u, "parentUuid": parent, "writer": name, "i": i}
        if mode == "client":
            failed += not client.append_session_log(sid, entry)
        else:
            failed += not engine.submit(sid, entry)
        uuids.append(u)
        parent = u
    if mode == "client":
        client.close()
    else:
        result = engine.flush(60)
        failed += result.failed + result.dropped + result.pending
        engine.close(5)
    print(json.dumps({"uuids": uuids, "failed": failed}))
    """
)


@pytest.mark.parametrize("mode", ["client", "engine"])
def test_two_processes_one_session_every_entry_once_each_order_kept(
    server: IngressServer, child_env: dict[str, str], leak_guard: object, mode: str
) -> None:
    """``client``: blocking appends; ``engine``: the background delivery engine."""
    sid = f"two-writers-{mode}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, server.base_url, sid, name, str(N), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        for name in ("A", "B")
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for (out, err), p in zip(outs, procs, strict=True):
        leak_guard.add(out, err)  # type: ignore[attr-defined]
        assert p.returncode == 0, err
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    a, b = (r["uuids"] for r in results)
    assert [r["failed"] for r in results] == [0, 0]

    stored = [e["uuid"] for e in server.entries(sid)]
    conflicts = sum(1 for r in server.requests if r.method == "PUT" and r.status == 409)
    print(
        f"two writers ({mode}): {len(a)} + {len(b)} submitted, {len(stored)} stored, "
        f"{conflicts} conflicts (409) resolved"
    )
    assert len(stored) == len(set(stored)) == 2 * N  # each once
    assert set(stored) == set(a) | set(b)  # every entry of both
    in_a = set(a)
    assert [u for u in stored if u in in_a] == a  # writer A's order
    assert [u for u in stored if u not in in_a] == b  # writer B's order
