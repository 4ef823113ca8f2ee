"""The whole server with a store that stores nothing: its HTTP/1.1 connections,
routes, checks, group commit, metrics and replies, over a store that decides
each append by the store's own rule (``plan_batch``) and keeps only the heads
in memory. bench_server.py measures it beside the HTTP stack alone, so the
server's own cost per append, outside any database, shows in every run."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ingress_logging.server._asgi import IngressApp
from ingress_logging.server._faults import FaultInjector
from ingress_logging.server._runner import Runner, bind_socket
from ingress_logging.server._state import ServerState
from ingress_logging.server.store import AppendRequest, AppendResult
from ingress_logging.server.store._batch import plan_batch
from ingress_logging.server.store.sqlite import SQLiteStore


class PlanOnlyStore(SQLiteStore):
    """An in-memory SQLite store whose appends are decided but never written."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self._heads: dict[str, str | None] = {}

    def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        plan = plan_batch(requests, self._heads, set())
        for sid, change in plan.changes.items():
            self._heads[sid] = change.head
        return plan.results


if __name__ == "__main__":
    state = ServerState(
        store=PlanOnlyStore(),
        faults=FaultInjector(),
        token=sys.argv[1],
        oauth_token=sys.argv[1],
        org_uuid=None,
        max_body_bytes=10 * 1024 * 1024,
        record=None,
    )
    sock = bind_socket("127.0.0.1", 0)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
    Runner(IngressApp(state), sock).run()
