"""The public surface the handler and the exporters code against."""

from __future__ import annotations

import inspect

import ingress_logging.delivery as delivery


def test_exported_names():
    required = {
        "DeliveryEngine",
        "FlushResult",
        "Health",
        "Counts",
        "get_shared_engine",
        "is_worker_thread",
        "RetryBudgetHook",
        "NoRetryBudget",
        "Spool",
        "Transport",
    }
    assert required <= set(delivery.__all__)
    for name in delivery.__all__:
        assert hasattr(delivery, name), name


def test_engine_signature_keeps_the_contracted_names():
    params = inspect.signature(delivery.DeliveryEngine).parameters
    for name, default in {
        "url_template": None,
        "token": None,
        "base_api_url": None,
        "plugins": None,
        "host": None,
        "retry_policy": None,
        "max_queue_entries": 10_000,
        "max_queue_bytes": 16 * 1024 * 1024,
        "overflow": "drop_newest",
        "block_timeout": 1.0,
        "max_concurrency": 64,
        "close_timeout": 5.0,
    }.items():
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == default, name
    submit = inspect.signature(delivery.DeliveryEngine.submit).parameters
    assert list(submit) == ["self", "session_id", "entry", "record", "size_hint"]
    for method in ("flush", "close", "stats", "is_worker_thread"):
        assert callable(getattr(delivery.DeliveryEngine, method))


def test_flush_result_truth_and_health_arithmetic():
    assert bool(delivery.FlushResult(delivered=3))
    assert not delivery.FlushResult(delivered=3, failed=1)
    assert not delivery.FlushResult(pending=1, timed_out=True)
    health = delivery.Health(submitted=10, delivered=5, retried=2, dropped=2, failed=1)
    assert health.pending == 2
    assert health.total == delivery.Counts(10, 5, 2, 2, 1)
