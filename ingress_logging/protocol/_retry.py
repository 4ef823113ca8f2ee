"""When to try again: the seed's capped exponential backoff, plus Retry-After.

The schedule is the seed's, exactly: attempt n (1-based) waits
``min(base_delay * 2**(n-1), max_delay)``. Jitter is off by default so the
schedule stays the seed's; when on, it only ever shortens a delay (a fraction
``jitter`` of it is randomised away), so the cap still holds.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times an append is tried and how long to wait in between.

    Args:
        max_attempts: attempts per entry, the first included (seed: 10).
        base_delay: seconds before the second attempt (seed: 0.5).
        max_delay: cap on one backoff delay in seconds (seed: 8.0).
        jitter: 0.0 (the seed's exact schedule) to 1.0 (full jitter).
        retry_after_cap: longest ``Retry-After`` (seconds) honoured on 429/503.
    """

    max_attempts: int = 10
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.0
    retry_after_cap: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.retry_after_cap < 0:
            raise ValueError("delays must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0.0 and 1.0")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        exponent = min(attempt - 1, 62)  # 2**62 already dwarfs any sane cap
        delay = min(self.base_delay * math.pow(2, exponent), self.max_delay)
        if self.jitter:
            delay *= 1.0 - self.jitter * self.random()
        return delay

    def retry_after_delay(self, header: str | None, *, now: float | None = None) -> float | None:
        """The server's requested delay, capped; None when absent or unparsable."""
        parsed = parse_retry_after(header, now=now)
        if parsed is None:
            return None
        return min(parsed, self.retry_after_cap)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` as delta-seconds or an HTTP date (RFC 9110 10.2.3).

    Returns seconds from ``now`` (wall clock), never negative; None when the
    header is absent or malformed, so the caller falls back to its backoff.
    """
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    whole, dot, fraction = value.partition(".")
    if (
        whole.isascii()
        and whole.isdigit()
        and (not dot or (fraction.isascii() and fraction.isdigit()))
    ):
        # RFC 9110 says whole seconds; a decimal fraction (sent by some servers, and
        # by the local test server so suites stay fast) is read as meant, not dropped.
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC says GMT; a naive date is read as such
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
