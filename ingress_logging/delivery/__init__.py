"""The delivery engine: one background deliverer shared by every front door.

>>> from ingress_logging.delivery import DeliveryEngine
>>> engine = DeliveryEngine(base_api_url="http://127.0.0.1:8080", token="t")  # doctest: +SKIP
>>> engine.submit("session-1", {"type": "system", "content": "hello"})  # doctest: +SKIP
True
>>> engine.flush(5.0)  # doctest: +SKIP
FlushResult(delivered=1, failed=0, dropped=0, pending=0, timed_out=False)

Design and measurements: ``docs/delivery.md``.
"""

from __future__ import annotations

from ._budget import RetryBudget, RetryBudgetState
from ._engine import DeliveryEngine
from ._seams import NoRetryBudget, RetryBudgetHook, Spool, Transport
from ._shared import get_shared_engine, release_shared_engine
from ._spool import Spool as SqliteSpool
from ._spool import SpoolStats
from ._threads import is_worker_thread
from ._types import Counts, FlushResult, Health, OverflowPolicy

__all__ = [
    "Counts",
    "DeliveryEngine",
    "FlushResult",
    "Health",
    "NoRetryBudget",
    "OverflowPolicy",
    "RetryBudget",
    "RetryBudgetHook",
    "RetryBudgetState",
    "Spool",
    "SpoolStats",
    "SqliteSpool",
    "Transport",
    "get_shared_engine",
    "is_worker_thread",
    "release_shared_engine",
]
