"""The fault suite across a real round trip (``DelayProxy``), through the engine.

4 sessions x 250 entries go through one ``DeliveryEngine`` with default
delivery settings to the local server behind a 20 ms round trip that does
not serialise a connection (so several appends of a session can be in flight
and a fault can land at any position of a window). Each session's requests
meet a seeded random script of 5xx, 429 with ``Retry-After``, lost replies
(the connection dropped after the commit) and 500s after the commit.
Afterwards each session holds exactly its entries, once each, in submission
order, chained by ``parentUuid``.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from typing import Any

import pytest

from ingress_logging import RetryPolicy
from ingress_logging.delivery import DeliveryEngine
from ingress_logging.server import IngressServer
from ingress_logging.testing_proxy import DelayProxy

SESSIONS = 4
PER_SESSION = 250
FAULTS: tuple[Any, ...] = (503, {"status": 429, "retry_after": 0.01}, "drop", "error_after_commit")


@pytest.mark.timeout(300)
def test_faults_across_a_round_trip_store_each_session_once_in_order(
    ingress_server_factory: Callable[..., IngressServer],
    delay_proxy_factory: Callable[..., DelayProxy],
    token: str,
) -> None:
    server = ingress_server_factory(token=token)
    proxy = delay_proxy_factory(server, rtt=0.02)
    sids = [f"net-{k}" for k in range(SESSIONS)]
    rng = random.Random(12)
    for sid in sids:
        steps = [rng.choice(FAULTS) if rng.random() < 0.08 else None for _ in range(PER_SESSION)]
        server.faults.script(steps, session_id=sid)
    engine = DeliveryEngine(
        base_api_url=proxy.base_url,
        token=token,
        retry_policy=RetryPolicy(
            max_attempts=100, base_delay=0.001, max_delay=0.02, retry_after_cap=0.02
        ),
        timeout=10,
    )
    try:
        for k in range(PER_SESSION):
            for sid in sids:
                assert engine.submit(sid, {"type": "user", "k": k})
        result = engine.flush(240)
        health = engine.stats()
    finally:
        engine.close(5)

    assert (result.pending, result.failed, result.dropped) == (0, 0, 0), result
    assert health.delivered == SESSIONS * PER_SESSION
    hit = collections.Counter(r.fault for r in server.requests if r.fault)
    for name in ("status_503", "status_429", "drop_after_commit", "error_after_commit"):
        assert hit[name] > 0, (name, hit)
    for sid in sids:
        entries = server.entries(sid)
        assert [e["k"] for e in entries] == list(range(PER_SESSION)), sid
        uuids = [e["uuid"] for e in entries]
        assert len(set(uuids)) == len(uuids), sid
        assert entries[0]["parentUuid"] is None
        assert [e["parentUuid"] for e in entries[1:]] == uuids[:-1], sid
