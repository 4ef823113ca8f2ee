from __future__ import annotations

import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingress_logging.protocol import RetryPolicy, parse_retry_after


def test_default_schedule_is_the_seeds() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (10, 0.5, 8.0)
    assert [policy.backoff(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 8, 8, 8, 8]


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    draw=st.floats(min_value=0.0, max_value=0.999999),
)
@settings(deadline=None)  # results, not speed: no flaky deadline on a busy machine
def test_jitter_only_shortens_and_never_exceeds_the_cap(
    attempt: int, jitter: float, draw: float
) -> None:
    plain = RetryPolicy().backoff(attempt)
    jittered = RetryPolicy(jitter=jitter, random=lambda: draw).backoff(attempt)
    assert 0.0 <= jittered <= plain <= 8.0


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"jitter": 1.5}, {"retry_after_cap": -1}]
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@given(st.text(max_size=80))
@settings(deadline=None)  # results, not speed: no flaky deadline on a busy machine
def test_retry_after_never_raises_and_is_never_negative(value: str) -> None:
    parsed = parse_retry_after(value)
    assert parsed is None or parsed >= 0.0
