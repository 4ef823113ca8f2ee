"""Operations data of one server process: Prometheus metrics and the JSON access log.

Metrics are counted per process. With ``--workers N`` the kernel hands each
scrape to one of the worker processes, so every sample then carries a
``worker`` label (0 to N-1) naming the process whose counts it holds; a
dashboard sums over ``worker`` (each worker's series moves only when that
worker answered a scrape). One process serves without the label. The
access log is one JSON object per request on the ``ingress_logging.server.access``
logger: method, path, status, duration, bytes, the peer and an injected
fault. Never a header (so never a token) and never a body.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections import Counter

__all__ = ["ACCESS_LOGGER", "BUCKETS", "Metrics", "access_line"]

ACCESS_LOGGER = logging.getLogger("ingress_logging.server.access")
#: Upper bounds (seconds) of the request latency histogram.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The ``status`` label by reply status (None: the connection was dropped).
_LABELS: dict[int | None, str] = {None: "dropped", **{s: str(s) for s in range(100, 600)}}


class Metrics:
    """Counters and a latency histogram; safe to update from any thread.

    ``worker`` (the worker process's number, with several) labels every sample.
    """

    def __init__(self, *, worker: int | None = None) -> None:
        self._worker = None if worker is None else f'worker="{int(worker)}"'
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._store_errors = 0
        self._batches = 0
        self._batched = 0
        self._buckets = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0

    def observe(self, route: str, status: int | None, seconds: float) -> None:
        label = _LABELS.get(status) or str(status)
        index = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:  # the append counts and the 409s are read from these at render
            self._requests[route, label] += 1
            self._buckets[index] += 1
            self._sum += seconds

    def batch(self, size: int) -> None:
        """One group-commit transaction of ``size`` appends was attempted."""
        with self._lock:
            self._batches += 1
            self._batched += size

    def store_error(self) -> None:
        with self._lock:
            self._store_errors += 1

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            appends = sorted((s, n) for (r, s), n in self._requests.items() if r == "append")
            requests = sorted(self._requests.items())
            conflicts = self._requests[("append", "409")]
            errors = self._store_errors
            batches, batched = self._batches, self._batched
            buckets, total = list(self._buckets), self._sum
            count = sum(buckets)
        sample = self._sample
        out = [
            "# HELP ingress_appends_total Appends (PUT of an entry) answered, by status.",
            "# TYPE ingress_appends_total counter",
        ]
        out += [sample("ingress_appends_total", f'status="{s}"', n) for s, n in appends]
        out += [
            "# HELP ingress_conflicts_total Appends refused with 409 (stale Last-Uuid or a"
            " uuid already stored).",
            "# TYPE ingress_conflicts_total counter",
            sample("ingress_conflicts_total", "", conflicts),
            "# HELP ingress_store_errors_total Store operations that failed (answered 503).",
            "# TYPE ingress_store_errors_total counter",
            sample("ingress_store_errors_total", "", errors),
            "# HELP ingress_append_batches_total Store transactions of the group commit.",
            "# TYPE ingress_append_batches_total counter",
            sample("ingress_append_batches_total", "", batches),
            "# HELP ingress_append_batched_total Appends those transactions carried.",
            "# TYPE ingress_append_batched_total counter",
            sample("ingress_append_batched_total", "", batched),
            "# HELP ingress_requests_total Requests answered, by route and status.",
            "# TYPE ingress_requests_total counter",
        ]
        out += [
            sample("ingress_requests_total", f'route="{r}",status="{s}"', n)
            for (r, s), n in requests
        ]
        out += [
            "# HELP ingress_request_duration_seconds Time from request to reply.",
            "# TYPE ingress_request_duration_seconds histogram",
        ]
        running = 0
        for bound, n in zip((*BUCKETS, float("inf")), buckets, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(sample("ingress_request_duration_seconds_bucket", f'le="{le}"', running))
        out += [
            sample("ingress_request_duration_seconds_sum", "", total),
            sample("ingress_request_duration_seconds_count", "", count),
        ]
        return "\n".join(out) + "\n"

    def _sample(self, name: str, labels: str, value: float) -> str:
        if self._worker is not None:
            labels = f"{labels},{self._worker}" if labels else self._worker
        return f"{name}{{{labels}}} {value}" if labels else f"{name} {value}"


def access_line(
    *,
    method: str,
    path: str,
    status: int | None,
    seconds: float,
    size: int,
    peer: str | None,
    fault: str | None,
) -> str:
    """One access-log line; only request metadata, never headers or bodies."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "bytes": size,
        "peer": peer,
    }
    if fault is not None:
        record["fault"] = fault
    return json.dumps(record, separators=(",", ":"))
