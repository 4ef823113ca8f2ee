"""Diagnostics events reach OpenTelemetry counters (read back with InMemoryMetricReader)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from ingress_logging_otel_metrics import EVENTS_COUNTER, ITEMS_COUNTER, OtelMetricsPlugin
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ingress_logging.diagnostics import (
    DELIVERY_DROPPED,
    SESSION_PERSIST_FAIL_STATUS,
    SESSION_PERSIST_RECOVERED_FROM_409,
)
from ingress_logging.hookspecs import hookimpl
from ingress_logging.plugins import PluginHost, new_plugin_manager


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def host(reader: InMemoryMetricReader) -> PluginHost:
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(OtelMetricsPlugin(MeterProvider(metric_readers=[reader])), name="otel-test")
    return PluginHost(pm, diagnostics=lambda *a: None)


def points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[Any], float]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[frozenset[Any], float] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for p in metric.data.data_points:
                        out[frozenset(p.attributes.items())] = p.value  # type: ignore[union-attr]
    return out


def test_events_are_counted_with_low_cardinality_attributes(
    host: PluginHost, reader: InMemoryMetricReader
) -> None:
    host.diagnostic("warn", SESSION_PERSIST_FAIL_STATUS, {"status": 503, "attempt": 1})
    host.diagnostic("warn", SESSION_PERSIST_FAIL_STATUS, {"status": 503, "attempt": 2})
    host.diagnostic("warn", SESSION_PERSIST_FAIL_STATUS, {"status": 500, "attempt": 1})
    host.diagnostic("info", SESSION_PERSIST_RECOVERED_FROM_409, {})
    ev = {"event": SESSION_PERSIST_FAIL_STATUS, "level": "warn"}
    assert points(reader, EVENTS_COUNTER) == {
        frozenset({**ev, "status": 503}.items()): 2,
        frozenset({**ev, "status": 500}.items()): 1,
        frozenset({"event": SESSION_PERSIST_RECOVERED_FROM_409, "level": "info"}.items()): 1,
    }
    assert points(reader, ITEMS_COUNTER) == {}


def test_count_fields_feed_the_items_counter(
    host: PluginHost, reader: InMemoryMetricReader
) -> None:
    host.diagnostic("warn", DELIVERY_DROPPED, {"count": 5, "reason": "queue_full"})
    host.diagnostic("warn", DELIVERY_DROPPED, {"count": 2, "reason": "queue_full"})
    host.diagnostic("warn", DELIVERY_DROPPED, {"count": 1, "reason": "shutdown"})
    base = {"event": DELIVERY_DROPPED, "level": "warn"}
    assert points(reader, ITEMS_COUNTER) == {
        frozenset({**base, "reason": "queue_full"}.items()): 7,
        frozenset({**base, "reason": "shutdown"}.items()): 1,
    }
    assert sum(points(reader, EVENTS_COUNTER).values()) == 3


def test_a_failing_sink_next_to_it_does_not_stop_the_counting(
    host: PluginHost, reader: InMemoryMetricReader
) -> None:
    class Broken:
        @hookimpl
        def ingress_diagnostic(self, level: str, event: str, data: Any) -> None:
            raise RuntimeError("broken sink")

    host.pm.register(Broken())
    host.diagnostic("error", DELIVERY_DROPPED, {"count": 1, "reason": "x"})
    assert host.sink_failures == 1
    assert sum(points(reader, EVENTS_COUNTER).values()) == 1


GLOBAL_PROVIDER_SCRIPT = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from ingress_logging.plugins import PluginHost

reader = InMemoryMetricReader()
host = PluginHost(diagnostics=lambda *a: None)  # process-wide manager: entry points
host.diagnostic("warn", "delivery_dropped", {"count": 4, "reason": "queue_full"})  # before
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
host.diagnostic("warn", "delivery_dropped", {"count": 2, "reason": "queue_full"})  # after
out = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            out[m.name] = sum(p.value for p in m.data.data_points)
print(json.dumps(out))
"""


def test_the_installed_plugin_counts_on_the_global_provider_once_one_is_set() -> None:
    """Through the real entry point, in a child process (the global provider is set-once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counted = json.loads(done.stdout)
    # Events before the provider existed went to the no-op meter: only the later one counts.
    assert counted == {EVENTS_COUNTER: 1, ITEMS_COUNTER: 2}
