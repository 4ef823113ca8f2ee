"""What opening a big session in the viewer costs, against reading it whole.

A session of ``--entries`` (default 50,000) transcript-shaped entries is
stored; then, alternating rounds in the same run, the wall time and bytes of:

- viewer: the session page's first request, ``GET /api/sessions/{id}/entries``
  (one window of 200 entries, with chain flags); the viewer keeps a copy of
  the session after its first read, so the first round ("cold") is printed
  apart;
- baseline: the protocol read ``GET /v1/session_ingress/session/{id}``
  parsed with orjson, what a page without windowing would have to load first.

    .venv/bin/python benchmarks/bench_viewer.py [--entries 50000] [--rounds 5]

The median round of each is printed, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import httpx
import orjson

from ingress_logging.server import run_server
from ingress_logging.server.viewer import StoreAuth, StoreViewer, run_app, viewer_app


def _entries(session_id: str, n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    parent: str | None = None
    for i in range(n):
        me = str(uuid.uuid4())
        role = "user" if i % 2 == 0 else "assistant"
        out.append(
            {
                "type": role,
                "uuid": me,
                "parentUuid": parent,
                "sessionId": session_id,
                "timestamp": "2026-01-01T00:00:00.000Z",
                "message": {"role": role, "content": [{"type": "text", "text": f"line {i} " * 20}]},
            }
        )
        parent = me
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sid = f"bench-{uuid.uuid4().hex[:8]}"
    with run_server(token="bench") as server:
        for entry in _entries(sid, args.entries):
            server.store.append(sid, entry, json.dumps(entry), None, check=False)
        app = viewer_app(StoreViewer(server.store), StoreAuth(server.store, server.token))
        with run_app(app) as viewer, httpx.Client(timeout=120) as http:
            http.post(f"{viewer.base_url}/signin", data={"token": server.token})
            window_url = f"{viewer.base_url}/api/sessions/{sid}/entries"
            read_url = server.session_url(sid)
            auth = {"Authorization": f"Bearer {server.token}"}
            times: dict[str, list[float]] = {"viewer": [], "baseline": []}
            sizes: dict[str, int] = {}
            for _ in range(args.rounds):
                start = time.perf_counter()
                reply = http.get(window_url)
                assert len(orjson.loads(reply.content)["items"]) == 200
                times["viewer"].append(time.perf_counter() - start)
                sizes["viewer"] = len(reply.content)
                start = time.perf_counter()
                reply = http.get(read_url, headers=auth)
                assert len(orjson.loads(reply.content)["loglines"]) == args.entries
                times["baseline"].append(time.perf_counter() - start)
                sizes["baseline"] = len(reply.content)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"session of {args.entries} entries, {args.rounds} rounds, median wall time")
    print(f"  viewer, cold (first request) {times['viewer'][0] * 1000:.1f} ms")
    for name in ("viewer", "baseline"):
        print(f"  {name:<9} {median[name] * 1000:9.1f} ms  {sizes[name] / 1024:10.1f} KiB")
    print(f"  viewer / baseline: {median['viewer'] / median['baseline']:.3f}")


if __name__ == "__main__":
    main()
