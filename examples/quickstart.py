"""Quickstart: an app that logs into session-ingress, then proves nothing was lost.

What it does, end to end, on this machine only:

1. starts the local session-ingress server (SQLite file in a temporary
   directory, loopback, a free port);
2. configures the app's logging with ``logging.config.dictConfig`` and
   ``IngressHandler`` - exactly as a real app would;
3. logs from several threads into three sessions: ``quickstart-web`` (the
   handler's default session), ``quickstart-jobs`` (chosen per block of code
   with ``ingress_logging.session(...)``) and ``quickstart-otel`` (through
   OpenTelemetry's SDK and ``IngressLogExporter``);
4. flushes, reads every session back with ``SessionIngressClient`` and checks
   each chain: the right count, no duplicates, every ``parentUuid`` pointing at
   the entry before it, and each thread's records in the order it logged them;
5. prints a short table and exits 1 if any check failed.

Run it with ``bash scripts/quickstart`` (or ``.venv/bin/python examples/quickstart.py``).
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

import ingress_logging
from ingress_logging import SessionIngressClient
from ingress_logging.otel import IngressLogExporter
from ingress_logging.server import run_server

WEB, JOBS, OTEL = "quickstart-web", "quickstart-jobs", "quickstart-otel"


@dataclass
class Check:
    """What one session should hold and what it does hold."""

    session_id: str
    source: str
    threads: int
    expected: int
    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def configure_logging(url: str, token: str) -> None:
    """The app's logging setup: one IngressHandler, built by dictConfig."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "ingress": {
                    "()": "ingress_logging.IngressHandler",
                    "url": url,
                    "token": token,
                    "session_id": WEB,  # records outside any session() block go here
                    "level": "INFO",
                },
            },
            "loggers": {"app": {"handlers": ["ingress"], "level": "INFO", "propagate": False}},
        }
    )


def run_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(n,), name=f"app-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def seq_of(entry: dict[str, Any]) -> tuple[int, int] | None:
    """(thread, seq) that the app attached to a record, from either front door."""
    fields = entry.get("extra") if entry.get("type") == "system" else entry.get("attributes")
    if not isinstance(fields, dict):
        return None
    thread, seq = fields.get("thread_no"), fields.get("seq")
    return (thread, seq) if isinstance(thread, int) and isinstance(seq, int) else None


def verify(check: Check, per_thread: int) -> None:
    """Count, uniqueness, parentUuid links, and per-thread order without gaps."""
    entries = check.entries
    if len(entries) != check.expected:
        check.problems.append(f"{len(entries)} entries, expected {check.expected}")
    uuids = [e.get("uuid") for e in entries]
    if len(set(uuids)) != len(uuids):
        check.problems.append("duplicate uuids")
    for i, entry in enumerate(entries):
        want = entries[i - 1].get("uuid") if i else None
        if entry.get("parentUuid") != want:
            check.problems.append(f"entry {i}: parentUuid does not point at entry {i - 1}")
            break
    seen: dict[int, list[int]] = {}
    for entry in entries:
        pair = seq_of(entry)
        if pair is None:
            check.problems.append(f"unexpected entry of type {entry.get('type')!r}")
            continue
        seen.setdefault(pair[0], []).append(pair[1])
    for thread in range(check.threads):
        if seen.get(thread) != list(range(per_thread)):
            check.problems.append(f"thread {thread}: records missing, doubled or out of order")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4, help="threads per session")
    parser.add_argument("--records", type=int, default=50, help="records per thread")
    args = parser.parse_args(argv)
    threads, per_thread = args.threads, args.records
    started = time.monotonic()

    with (
        tempfile.TemporaryDirectory() as tmp,
        run_server(secrets.token_urlsafe(16), db=str(Path(tmp) / "ingress.db")) as srv,
    ):
        url = srv.base_url + "/v1/session_ingress/session/{session_id}"
        print(f"local session-ingress server on {srv.base_url} (SQLite in {tmp})")
        configure_logging(url, srv.token)
        log = logging.getLogger("app")

        # OpenTelemetry's SDK, exporting into session-ingress through the same engine.
        provider = LoggerProvider()
        exporter = IngressLogExporter(url=url, token=srv.token, session_id=OTEL)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        otel_log = provider.get_logger("quickstart.otel")

        def web(n: int) -> None:
            for i in range(per_thread):
                log.info("request %d served by thread %d", i, n, extra={"thread_no": n, "seq": i})

        def jobs(n: int) -> None:
            with ingress_logging.session(JOBS):
                for i in range(per_thread):
                    log.warning("job step %d on thread %d", i, n, extra={"thread_no": n, "seq": i})

        def otel(n: int) -> None:
            for i in range(per_thread):
                otel_log.emit(
                    body=f"otel record {i} from thread {n}",
                    severity_number=SeverityNumber.INFO,
                    attributes={"thread_no": n, "seq": i},
                )

        run_threads(threads, web)
        run_threads(threads, jobs)
        run_threads(threads, otel)

        # Flush both front doors: everything logged so far is delivered (or reported).
        # The SDK's force_flush only empties its batch into the exporter; the
        # exporter's own force_flush waits for delivery.
        provider.force_flush()
        exporter.force_flush()
        for handler in log.handlers:
            handler.flush()
        provider.shutdown()

        checks = [
            Check(WEB, "logging handler", threads, threads * per_thread),
            Check(JOBS, "handler + session()", threads, threads * per_thread),
            Check(OTEL, "OpenTelemetry", threads, threads * per_thread),
        ]
        with SessionIngressClient(srv.token, base_api_url=srv.base_url) as client:
            for check in checks:
                sid = check.session_id
                check.entries = client.get_session_logs(sid, url.format(session_id=sid)) or []
                verify(check, per_thread)
        for handler in log.handlers:
            handler.close()

    print()
    print(f"{'session':<18} {'front door':<20} {'threads':>7} {'entries':>8}  chain")
    for check in checks:
        status = "ok" if not check.problems else "FAILED: " + "; ".join(check.problems[:3])
        print(
            f"{check.session_id:<18} {check.source:<20} {check.threads:>7} "
            f"{len(check.entries):>8}  {status}"
        )
    failed = [c for c in checks if c.problems]
    elapsed = time.monotonic() - started
    print()
    if failed:
        print(f"{len(failed)} session(s) failed verification ({elapsed:.1f} s)")
        return 1
    print(f"every chain complete, in order, without duplicates ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
