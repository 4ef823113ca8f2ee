"""``ship``: identical uuid-less lines, a server that is down, what went where."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ingress_logging.server import IngressServer

SUMMARY = re.compile(
    r"^(\d+) sent, (\d+) skipped \(already in the session\), (\d+) failed, (\d+) bad lines",
    re.M,
)


def counts(stdout: str) -> tuple[int, int, int, int]:
    match = SUMMARY.search(stdout)
    assert match is not None, stdout
    sent, skipped, failed, bad = (int(g) for g in match.groups())
    return sent, skipped, failed, bad


def _with_twin_summaries(transcript) -> list[dict]:
    entries = transcript(8)
    summary = {"type": "summary", "summary": "the same words", "leafUuid": entries[1]["uuid"]}
    return [*entries[:3], summary, dict(summary), *entries[3:], dict(summary)]


def test_identical_lines_without_uuid_are_each_stored(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = _with_twin_summaries(transcript)
    sid = entries[0]["sessionId"]
    path = jsonl(tmp_path / "twins.jsonl", entries)

    first = run_cli("ship", str(path))
    again = run_cli("ship", str(path))

    assert first.returncode == 0, first.stderr
    assert counts(first.stdout) == (11, 0, 0, 0)
    assert counts(again.stdout) == (0, 11, 0, 0)
    assert server.entries(sid) == entries


def test_a_twin_is_skipped_only_as_often_as_the_session_holds_it(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = _with_twin_summaries(transcript)
    sid = entries[0]["sessionId"]
    # The session already holds the first four lines: one copy of the summary.
    run_cli("ship", str(jsonl(tmp_path / "head.jsonl", entries[:4])))

    result = run_cli("ship", str(jsonl(tmp_path / "all.jsonl", entries)))

    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == (7, 4, 0, 0)
    assert server.entries(sid) == entries


def test_it_says_which_sessions_it_wrote_to_and_how_many_each(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    a, b = transcript(9), transcript(5)
    run_cli("ship", str(jsonl(tmp_path / "b-head.jsonl", b[:2])))
    path = jsonl(tmp_path / "two.jsonl", a + b)

    result = run_cli("ship", str(path))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"session {a[0]['sessionId']}: 9 sent, 0 skipped" in lines
    assert f"session {b[0]['sessionId']}: 3 sent, 2 skipped" in lines


def test_a_server_that_is_down_is_one_clear_line(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(500)
    path = jsonl(tmp_path / "t.jsonl", entries)
    base_url = server.base_url
    server.stop()

    result = run_cli("ship", str(path))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot connect to {base_url} (connection refused); nothing was sent"
    ]
    assert "failed:" not in result.stderr


def test_a_server_lost_mid_upload_stops_the_run_at_once_and_a_rerun_finishes(
    server: IngressServer,
    cli_env,
    cli_command,
    run_cli,
    transcript,
    jsonl,
    tmp_path: Path,
    wait_for,
) -> None:
    entries = transcript(300)
    sid = entries[0]["sessionId"]
    path = jsonl(tmp_path / "t.jsonl", entries)
    server.faults.latency = 0.01
    proc = subprocess.Popen(
        [*cli_command, "ship", "--no-progress", str(path)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: len(server.entries(sid)) >= 10, timeout=30)
        server.stop()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stored = len(server.entries(sid))

    assert proc.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith(("Error", "failed"))]
    assert len(errors) == 1, stderr
    match = re.fullmatch(
        rf"Error: cannot connect to {re.escape(server.base_url)} \(connection refused\); "
        r"(\d+) entries not sent: run the same command again to resume",
        errors[0],
    )
    assert match is not None, errors
    sent, skipped, failed, bad = counts(stdout)
    assert (skipped, failed, bad) == (0, 0, 0)
    assert sent + int(match.group(1)) == 300
    assert sent in (stored, stored - 1)  # the entry in flight may have landed

    server.faults.latency = 0.0
    server.start()
    rerun = run_cli("ship", str(path))

    assert rerun.returncode == 0, rerun.stderr
    assert server.entries(sid) == entries


@pytest.mark.parametrize("jobs", ["1", "4"])
def test_a_server_that_is_down_stops_every_job(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path, jobs: str
) -> None:
    paths = [jsonl(tmp_path / f"s{i}.jsonl", transcript(50)) for i in range(4)]
    base_url = server.base_url
    server.stop()

    result = run_cli("ship", "--jobs", jobs, *map(str, paths))

    assert result.returncode == 1
    assert result.stderr.count("cannot connect") == 1
    assert f"cannot connect to {base_url} (connection refused)" in result.stderr


@pytest.mark.parametrize(
    "fault",
    [
        "error_after_commit_next",  # stored, answered 500
        "drop_after_commit_next",  # stored, no reply at all
        "fail_next",  # answered 503, not stored: tried again
    ],
)
def test_a_lost_reply_to_a_line_without_uuid_does_not_store_it_twice(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path, fault
) -> None:
    entries = transcript(2)
    sid = entries[0]["sessionId"]
    summary = {"type": "summary", "summary": "once", "leafUuid": entries[0]["uuid"]}
    run_cli("ship", str(jsonl(tmp_path / "head.jsonl", entries[:1])))
    getattr(server.faults, fault)(1)  # the summary is stored, its reply lost

    result = run_cli("ship", str(jsonl(tmp_path / "t.jsonl", [entries[0], summary, entries[1]])))

    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == (2, 1, 0, 0)
    assert server.entries(sid) == [entries[0], summary, entries[1]]
