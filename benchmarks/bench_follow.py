"""``ship --follow``: from a line written to its PUT arriving, and idle CPU.

A follower (the real command, a subprocess) follows FILES files in one
directory against a local server in this process. Lines are appended one at
a time at random files, a pause between them; the latency of a line is the
time from the end of its write to the server receiving its PUT
(``RequestRecord.t``, same clock). Then the follower idles and its CPU is
read from /proc. Notifications (watchfiles) and ``--poll`` side by side:

    .venv/bin/python benchmarks/bench_follow.py [--files 100] [--lines 200] [--idle 10]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from ingress_logging.server import run_server

COMMAND = [str(Path(sys.executable).with_name("ingress-logging"))]


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(mode: list[str], files: int, lines: int, idle: float) -> dict[str, float]:
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    try:
        with run_server(token="bench") as srv:
            paths = [work / f"s{i:03d}.jsonl" for i in range(files)]
            for p in paths:
                p.touch()
            env = {
                **os.environ,
                "INGRESS_LOGGING_BASE_URL": srv.base_url,
                "INGRESS_LOGGING_TOKEN": srv.token,
            }
            proc = subprocess.Popen(
                [
                    *COMMAND,
                    "ship",
                    "--follow",
                    "--state-file",
                    str(work / "st.json"),
                    *mode,
                    str(work),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert proc.stderr is not None
            proc.stderr.readline()  # "follow: N files, watching with ...": it is ready
            written: dict[str, float] = {}
            for _ in range(lines):
                p = rng.choice(paths)
                me = str(uuid.uuid4())
                entry = {
                    "type": "user",
                    "uuid": me,
                    "sessionId": p.stem,
                    "message": {"content": "x"},
                }
                with open(p, "ab") as f:
                    f.write(orjson.dumps(entry) + b"\n")
                written[me] = time.monotonic()
                time.sleep(rng.uniform(0.005, 0.02))
            deadline = time.monotonic() + 60
            while True:
                seen = {r.entry_uuid: r.t for r in srv.requests if r.method == "PUT"}
                if all(u in seen for u in written) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            latencies = sorted(seen[u] - t for u, t in written.items() if u in seen)
            time.sleep(1.0)
            before = _cpu(proc.pid)
            time.sleep(idle)
            used = _cpu(proc.pid) - before
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[int(len(latencies) * 0.95) - 1],
        "max": latencies[-1],
        "missing": len(written) - len(latencies),
        "idle_cpu_share": used / idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    results = {
        "notifications": run([], args.files, args.lines, args.idle),
        "polling (--poll)": run(["--poll"], args.files, args.lines, args.idle),
    }
    print(f"{args.files} files, {args.lines} lines; write -> PUT received, seconds")
    print(f"{'mode':<18} {'p50':>7} {'p95':>7} {'max':>7} {'missing':>8} {'idle CPU':>9}")
    for name, r in results.items():
        print(
            f"{name:<18} {r['p50']:>7.3f} {r['p95']:>7.3f} {r['max']:>7.3f} "
            f"{r['missing']:>8.0f} {r['idle_cpu_share']:>8.2%}"
        )
    n, p = results["notifications"], results["polling (--poll)"]
    print(
        f"ratio notifications/polling: p50 {n['p50'] / p['p50']:.2f}x, idle CPU "
        f"{n['idle_cpu_share'] / max(p['idle_cpu_share'], 1e-9):.2f}x"
    )


if __name__ == "__main__":
    main()
