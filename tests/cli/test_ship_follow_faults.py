"""``ship --follow`` under a live writer, kill -9, a server restart, lost replies and rotation.

Seeded: a failure names its seed (``FOLLOW_SEED=N`` runs that one again).
The end state must be exactly the input: every session holds its lines once
each, in file order.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ingress_logging.server import IngressServer

WRITER = Path(__file__).with_name("follow_writer.py")
SEEDS = [int(os.environ["FOLLOW_SEED"])] if "FOLLOW_SEED" in os.environ else [11, 29]


def _session(transcript, rng: random.Random, n: int) -> list[dict]:
    entries = transcript(n)
    for entry in entries:  # random sizes: some lines are long
        if entry.get("type") == "user" and isinstance(entry["message"]["content"], str):
            entry["message"]["content"] += " " + "x" * rng.choice([0, 10, 500, 5000, 60000])
    twin = {"type": "summary", "summary": "twin", "leafUuid": entries[0]["uuid"]}
    for at in sorted(rng.sample(range(1, n), 3), reverse=True):
        entries.insert(at, dict(twin))  # identical uuid-less lines: each one is stored
    return entries


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_the_end_state_is_exactly_the_input_whatever_happens_on_the_way(
    server: IngressServer, cli_env, cli_command, transcript, tmp_path: Path, wait_for, started, seed
) -> None:
    rng = random.Random(seed)
    watched = tmp_path / "projects"
    watched.mkdir()
    state = tmp_path / "state.json"
    sessions = {f"s{i}.jsonl": _session(transcript, rng, 50) for i in range(3)}
    spec = {
        "seed": seed,
        "dir": str(watched),
        "max_pause": 0.02,
        "files": {
            name: [orjson.dumps(e).decode() for e in entries] for name, entries in sessions.items()
        },
        "rotate": {"file": "s0.jsonl", "after": 25, "to": "s0.rotated-1.jsonl"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    total = sum(len(e) for e in sessions.values())
    sids = {name: entries[0]["sessionId"] for name, entries in sessions.items()}

    def stored() -> int:
        return sum(len(server.entries(sid)) for sid in sids.values())

    logs: list[Path] = []

    def follower() -> subprocess.Popen[str]:
        logs.append(tmp_path / f"follower-{len(logs)}.log")
        with open(logs[-1], "w") as log:
            proc = subprocess.Popen(
                [*cli_command, "ship", "--follow", "--state-file", str(state), str(watched)],
                env=cli_env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        started.append(proc)
        return proc

    writer = subprocess.Popen([sys.executable, str(WRITER), str(tmp_path / "spec.json")])
    started.append(writer)  # type: ignore[arg-type]
    proc = follower()
    kills = sorted(rng.sample(range(10, total - 20), 3))
    for n, threshold in enumerate(kills):
        assert wait_for(lambda t=threshold: stored() >= t, timeout=60), (seed, stored())
        if n == 1:
            server.restart()  # while the follower runs: it waits and carries on
            assert wait_for(lambda t=threshold: stored() >= t + 5, timeout=60), (seed, stored())
        if n == 2:  # replies lost after the store, for whichever lines come next
            server.faults.drop_after_commit_next(rng.randint(1, 3))
            server.faults.error_after_commit_next(rng.randint(1, 3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc = follower()
    assert writer.wait(timeout=60) == 0
    if not wait_for(lambda: stored() >= total, timeout=60):
        missing = {
            name: [
                e.get("uuid") or e.get("summary")
                for e in entries
                if e not in server.entries(sids[name])
            ]
            for name, entries in sessions.items()
        }
        pytest.fail(
            f"seed {seed}: {stored()} of {total} stored; missing {missing}; logs in {tmp_path}"
        )
    proc.send_signal(signal.SIGTERM)
    _out, _ = proc.communicate(timeout=30)

    assert proc.returncode == 0, seed
    for name, entries in sessions.items():
        assert server.entries(sids[name]) == entries, (seed, name)
