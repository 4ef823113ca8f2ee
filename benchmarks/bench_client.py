"""Client CPU time per appended entry, against a bare ``httpx.Client.put`` loop.

Both loops append the same kind of entries, chained with ``Last-Uuid``, over
one keep-alive connection to the same local server, in the same run. The
server runs in a child process, so ``time.process_time()`` here measures the
client side only. Rounds alternate (bare, client, bare, client, ...) so that
drift in machine load hits both; the median round of each is reported.

    .venv/bin/python benchmarks/bench_client.py [--entries 2000] [--rounds 5]

Target: client / bare <= 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from _child_server import ChildServer

from ingress_logging import RetryPolicy, SessionIngressClient
from ingress_logging.plugins import new_plugin_manager

TARGET_RATIO = 1.3


def _entry(session_id: str, parent: str | None) -> dict[str, Any]:
    return {
        "type": "user",
        "uuid": str(uuid.uuid4()),
        "parentUuid": parent,
        "sessionId": session_id,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "isSidechain": False,
        "message": {"role": "user", "content": "benchmark line " + "x" * 200},
    }


def _bare_round(http: httpx.Client, base: str, token: str, n: int) -> float:
    session_id = f"bare-{uuid.uuid4().hex}"
    url = f"{base}/v1/session_ingress/session/{session_id}"
    entries = [_entry(session_id, None) for _ in range(n)]
    last: str | None = None
    start = time.process_time()
    for entry in entries:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if last:
            headers["Last-Uuid"] = last
        response = http.put(url, content=orjson.dumps(entry), headers=headers)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"bare put failed: {response.status_code}")
        last = entry["uuid"]
    return (time.process_time() - start) / n


def _client_round(client: SessionIngressClient, base: str, n: int) -> float:
    session_id = f"client-{uuid.uuid4().hex}"
    url = f"{base}/v1/session_ingress/session/{session_id}"
    entries = [_entry(session_id, None) for _ in range(n)]
    append = client.append_session_log
    start = time.process_time()
    for entry in entries:
        if not append(session_id, entry, url):
            raise RuntimeError("client append failed")
    return (time.process_time() - start) / n


def run(
    entries: int,
    rounds: int,
    report: Callable[[str], None] = print,
    *,
    installed_plugins: bool = False,
) -> float:
    server = ChildServer()
    try:
        base, token = server.base_url, server.token
        with (
            httpx.Client() as http,
            SessionIngressClient(
                token,
                base_api_url=base,
                retry_policy=RetryPolicy(max_attempts=1),
                diagnostics=lambda *_: None,
                # by default the built-in plugin only: installed plugins are their
                # authors' cost, not the client's (--installed-plugins measures them)
                plugins=None if installed_plugins else new_plugin_manager(load_entrypoints=False),
            ) as client,
        ):
            _bare_round(http, base, token, min(200, entries))  # warm up both paths
            _client_round(client, base, min(200, entries))
            bare: list[float] = []
            ours: list[float] = []
            for _ in range(rounds):
                bare.append(_bare_round(http, base, token, entries))
                ours.append(_client_round(client, base, entries))
        bare_cpu, client_cpu = statistics.median(bare), statistics.median(ours)
        ratio = client_cpu / bare_cpu
        plugins = "installed entry-point plugins" if installed_plugins else "built-in plugin only"
        report(f"entries per round: {entries}, rounds: {rounds} (median shown), {plugins}")
        report(f"bare httpx.Client.put : {bare_cpu * 1e6:8.1f} us CPU per entry")
        report(f"SessionIngressClient  : {client_cpu * 1e6:8.1f} us CPU per entry")
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
        report(f"ratio client/bare     : {ratio:8.3f}  (target <= {TARGET_RATIO}: {verdict})")
        return ratio
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--installed-plugins",
        action="store_true",
        help="use the process-wide plugin manager (entry-point plugins loaded)",
    )
    args = parser.parse_args()
    run(args.entries, args.rounds, installed_plugins=args.installed_plugins)


if __name__ == "__main__":
    main()
