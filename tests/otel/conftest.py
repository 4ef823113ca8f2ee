"""Fixtures for the OpenTelemetry exporter tests: a clean environment, fast retries."""

from __future__ import annotations

from typing import Any

import pytest

ENV_VARS = (
    "INGRESS_LOGGING_URL",
    "INGRESS_LOGGING_BASE_URL",
    "INGRESS_LOGGING_TOKEN",
    "INGRESS_LOGGING_TOKEN_FILE",
    "INGRESS_LOGGING_SESSION_ID",
    "INGRESS_LOGGING_SHUTDOWN_TIMEOUT",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_LOGS_EXPORTER",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No INGRESS_LOGGING_* / OTEL_* setting leaks in from the outer environment."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fast_engine_options() -> dict[str, Any]:
    """Engine options for tests: millisecond backoff, so failures end quickly."""
    from ingress_logging.protocol import RetryPolicy

    return {"retry_policy": RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.005)}
