"""The retry budget during a full outage with 50 sessions, and after it.

The server answers every PUT with 503 for ``OUTAGE`` seconds (default 3)
while 50 sessions hold 3 entries each; per-session backoff is fast (1-50 ms)
so, without a budget, every session would hammer the server on its own clock.
With the default budget (100 tokens, ratio 0.1, one probe per second) the
requests sent during the outage stay within the stated bound

    sessions + max_tokens / 2 + max_concurrency + outage / probe_interval + 1

and once the server is back, delivery resumes within a probe interval plus
a little, and everything arrives. The control run without a budget shows the
bound is not trivially met.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ingress_logging import RetryPolicy
from ingress_logging.client._windowed import INITIAL_WINDOW
from ingress_logging.delivery import DeliveryEngine, NoRetryBudget, RetryBudget
from ingress_logging.delivery._seams import RetryBudgetHook
from ingress_logging.diagnostics import RETRY_BUDGET_EXHAUSTED, DiagnosticSink
from ingress_logging.plugins import PluginHost
from ingress_logging.server import IngressServer

OUTAGE = float(os.environ.get("RELIABILITY_OUTAGE_SECONDS", "3"))
SESSIONS = 50
PER_SESSION = 3
CONCURRENCY = 8
POLICY = RetryPolicy(max_attempts=100_000, base_delay=0.001, max_delay=0.05)


def run_outage(
    server: IngressServer,
    token: str,
    budget: RetryBudgetHook,
    outage: float,
    sink: DiagnosticSink,
) -> tuple[int, float, DeliveryEngine]:
    """(PUTs sent during the outage, when the server recovered, the engine)."""
    server.faults.fail_share(1.0, status=503)
    engine = DeliveryEngine(
        host=PluginHost(base_api_url=server.base_url, token=token, diagnostics=sink),
        retry_policy=POLICY,
        retry_budget=budget,
        max_concurrency=CONCURRENCY,
    )
    start = time.monotonic()
    for k in range(SESSIONS):
        for i in range(PER_SESSION):
            assert engine.submit(f"outage-{k:02d}", {"type": "user", "i": i})
    time.sleep(outage)  # the outage itself is the thing measured, not a sync
    server.faults.fail_share(0)
    recovered = time.monotonic()
    during = sum(1 for r in server.requests if r.method == "PUT" and start <= r.t < recovered)
    return during, recovered, engine


def test_full_outage_requests_stay_bounded_and_delivery_resumes(
    server: IngressServer, token: str, leak_guard: Any
) -> None:
    budget = RetryBudget()
    during, recovered, engine = run_outage(server, token, budget, OUTAGE, leak_guard.sink)
    result = engine.flush(30)
    finished = time.monotonic()
    health = engine.stats()
    engine.close(5)
    first_ok = min(r.t for r in server.requests if r.status in (200, 201))
    state = budget.snapshot()
    # Each worker's first window may carry INITIAL_WINDOW appends before the
    # first failure drops the origin's window to 1 (docs/guarantees.md).
    bound = SESSIONS + 100 / 2 + CONCURRENCY * INITIAL_WINDOW + OUTAGE / budget.probe_interval + 1
    print(
        f"\nretry budget, full outage {OUTAGE:.0f}s x {SESSIONS} sessions: {during} PUTs "
        f"(bound {bound:.0f}); first success {first_ok - recovered:.2f}s after recovery; "
        f"all {health.delivered} delivered {finished - recovered:.2f}s after recovery; "
        f"budget {state}"
    )
    assert during <= bound
    exhausted = [e for e in leak_guard.events if e[1] == RETRY_BUDGET_EXHAUSTED]
    assert len(exhausted) == state.exhausted >= 1  # reported each time it closed
    assert state.retries_denied > 0
    assert state.probes >= 1
    assert first_ok - recovered <= budget.probe_interval + 0.5
    assert (result.pending, result.failed, result.dropped) == (0, 0, 0)
    assert health.delivered == SESSIONS * PER_SESSION
    assert finished - recovered <= budget.probe_interval + 5.0
    for k in range(SESSIONS):
        assert [e["i"] for e in server.entries(f"outage-{k:02d}")] == list(range(PER_SESSION))


def test_control_without_a_budget_the_same_outage_is_a_storm(
    server: IngressServer, token: str, leak_guard: Any
) -> None:
    # 2 s, not 1: the storm's size is CPU-bound (650-970 PUTs/s here, fewer on a
    # slower or busier CI box), the bound barely grows with the outage, so the
    # longer window keeps "more than 3x the bound" far from the edge.
    outage = 2.0
    during, _, engine = run_outage(server, token, NoRetryBudget(), outage, leak_guard.sink)
    engine.close(5)
    bound = SESSIONS + 100 / 2 + CONCURRENCY + outage / 1.0 + 1
    print(f"\nno retry budget, full outage {outage:.0f}s: {during} PUTs (budget bound {bound:.0f})")
    assert during > 3 * bound
