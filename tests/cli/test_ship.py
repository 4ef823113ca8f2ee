"""``ingress-logging ship``: the real command against the real local server."""

from __future__ import annotations

import itertools
import os
import pty
import re
import signal
import subprocess
from pathlib import Path

import orjson
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


def test_ship_appends_every_entry_unchanged_and_in_order(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(30)
    sid = entries[0]["sessionId"]
    path = jsonl(tmp_path / "t.jsonl", entries)

    result = run_cli("ship", str(path))

    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == (30, 0, 0, 0)
    assert server.entries(sid) == entries  # uuid/parentUuid/sessionId kept exactly
    assert "ship: done with" in result.stderr  # plain progress lines off a terminal


def test_rerun_after_a_partial_upload_resumes_without_duplicates(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(40)
    sid = entries[0]["sessionId"]
    half = jsonl(tmp_path / "half.jsonl", entries[:17])
    full = jsonl(tmp_path / "full.jsonl", entries)

    first = run_cli("ship", str(half))
    second = run_cli("ship", str(full))
    third = run_cli("ship", str(full))

    assert counts(first.stdout) == (17, 0, 0, 0)
    assert counts(second.stdout) == (23, 17, 0, 0)
    assert counts(third.stdout) == (0, 40, 0, 0)
    assert third.returncode == 0
    stored = server.entries(sid)
    assert stored == entries
    uuids = [e["uuid"] for e in stored if "uuid" in e]
    assert len(uuids) == len(set(uuids))


def test_killed_upload_is_finished_by_running_it_again(
    server: IngressServer,
    cli_env,
    cli_command,
    transcript,
    jsonl,
    tmp_path: Path,
    run_cli,
    wait_for,
) -> None:
    entries = transcript(60)
    sid = entries[0]["sessionId"]
    path = jsonl(tmp_path / "t.jsonl", entries)
    server.faults.latency = 0.02  # slow enough to kill it mid-stream

    proc = subprocess.Popen(
        [*cli_command, "ship", str(path)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def going() -> bool:
            assert proc.poll() is None, "ship finished before it could be interrupted"
            return len(server.entries(sid)) >= 10

        wait_for(going, timeout=30, what="ship to get going")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    partial = len(server.entries(sid))
    assert 10 <= partial < 60

    server.faults.latency = 0.0
    result = run_cli("ship", str(path))

    assert result.returncode == 0, result.stderr
    sent, skipped, failed, bad = counts(result.stdout)
    assert (sent + skipped, failed, bad) == (60, 0, 0)
    assert skipped >= partial  # the in-flight entry may have landed after the kill
    assert server.entries(sid) == entries


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_is_sent(
    server: IngressServer, run_cli, transcript, tmp_path: Path
) -> None:
    entries = transcript(6)
    sid = entries[0]["sessionId"]
    lines = [orjson.dumps(e).decode() for e in entries]
    lines.insert(2, "{not json")
    lines.insert(4, "")  # blank lines are ignored, not errors
    lines.insert(5, "[1, 2, 3]")
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_cli("ship", str(path))

    assert result.returncode == 1
    assert counts(result.stdout) == (6, 0, 0, 2)
    assert f"{path}:3: not valid JSON" in result.stderr
    assert f"{path}:6: a JSON list, not an object" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.entries(sid) == entries


def test_a_byte_order_mark_at_the_top_is_not_a_bad_line(
    server: IngressServer, run_cli, transcript, tmp_path: Path
) -> None:
    entries = transcript(3)
    sid = entries[0]["sessionId"]
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(orjson.dumps(e) + b"\r\n" for e in entries))

    result = run_cli("ship", str(path))

    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == (3, 0, 0, 0)
    assert server.entries(sid) == entries


def test_session_option_overrides_the_target_but_keeps_the_entry(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(8)
    path = jsonl(tmp_path / "t.jsonl", entries)

    result = run_cli("ship", "--session", "copy-1", str(path))

    assert result.returncode == 0, result.stderr
    assert server.entries("copy-1") == entries
    assert server.entries(entries[0]["sessionId"]) == []


def test_entries_without_any_session_need_the_option(
    run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = [e for e in transcript(14) if "sessionId" not in e]
    path = jsonl(tmp_path / "orphans.jsonl", entries)

    result = run_cli("ship", str(path))

    assert result.returncode == 1
    assert f"{path}:1: no sessionId in this file; pass --session" in result.stderr
    assert counts(result.stdout) == (0, 0, 0, len(entries))


def test_each_entry_goes_to_its_own_session(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    a, b = transcript(9), transcript(5)
    path = jsonl(tmp_path / "two.jsonl", a + b)

    result = run_cli("ship", str(path))

    assert result.returncode == 0, result.stderr
    assert server.entries(a[0]["sessionId"]) == a
    assert server.entries(b[0]["sessionId"]) == b


def test_failed_entries_are_counted_and_the_exit_status_says_so(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(4)
    path = jsonl(tmp_path / "t.jsonl", entries)
    server.faults.fail_share(1.0, status=503)

    result = run_cli("ship", str(path))

    assert result.returncode == 1
    assert counts(result.stdout) == (0, 0, 4, 0)
    assert f"failed: {path}:1: gave up on an entry after 3 attempts" in result.stderr


def test_a_rejected_token_is_one_line_without_the_token(
    server: IngressServer, run_cli, cli_env, transcript, jsonl, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "t.jsonl", transcript(3))
    env = {**cli_env, "INGRESS_LOGGING_TOKEN": "wrong-secret-value"}

    result = run_cli("ship", str(path), env=env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "wrong-secret-value" not in result.stderr + result.stdout
    assert result.stderr.strip().startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_progress_bar_shows_rate_and_eta_when_forced(
    run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "t.jsonl", transcript(12))

    result = run_cli("ship", "--progress", str(path))

    assert result.returncode == 0, result.stderr
    assert "entries/s" in result.stderr
    assert "ETA" in result.stderr
    assert "12/12" in result.stderr


def test_resume_stays_exact_when_a_redaction_plugin_changes_entries(
    server: IngressServer, run_cli, cli_env, transcript, jsonl, tmp_path: Path
) -> None:
    pytest.importorskip("ingress_logging_redact")
    entries = transcript(7)
    sid = entries[0]["sessionId"]
    entries[5]["summary"] = "mail ada@example.com about it"  # a summary: no uuid
    path = jsonl(tmp_path / "t.jsonl", entries)
    env = {**cli_env, "INGRESS_LOGGING_REDACT_BUILTINS": "emails"}

    first = run_cli("ship", str(path), env=env)
    second = run_cli("ship", str(path), env=env)

    assert counts(first.stdout) == (7, 0, 0, 0)
    assert counts(second.stdout) == (0, 7, 0, 0)
    stored = server.entries(sid)
    assert len(stored) == 7
    assert "ada@example.com" not in orjson.dumps(stored).decode()


def test_sessions_are_shipped_concurrently_each_in_order(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    sessions = [transcript(5) for _ in range(4)]
    paths = [jsonl(tmp_path / f"s{i}.jsonl", s) for i, s in enumerate(sessions)]
    server.faults.latency = 0.1

    result = run_cli("ship", "--jobs", "4", *map(str, paths))

    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == (20, 0, 0, 0)
    for entries in sessions:
        assert server.entries(entries[0]["sessionId"]) == entries
    puts = sorted((r.t, r.session_id) for r in server.requests if r.method == "PUT")
    overlapping = [
        (a, b) for a, b in itertools.pairwise(puts) if b[0] - a[0] < 0.05 and a[1] != b[1]
    ]
    assert overlapping, "with --jobs 4 the sessions' requests should overlap in time"
    for file_path in paths:
        assert f"ship: done with {file_path}" in result.stderr


def test_a_terminal_gets_the_bar_without_asking(
    cli_env, cli_command, transcript, jsonl, tmp_path: Path
) -> None:
    path = jsonl(tmp_path / "t.jsonl", transcript(9))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*cli_command, "ship", str(path)],
            env={**cli_env, "COLUMNS": "100"},
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")

    assert proc.returncode == 0
    assert counts(stdout) == (9, 0, 0, 0)
    assert "9/9" in terminal
    assert "entries/s" in terminal
    assert "ship: done with" not in terminal  # the plain lines are for non-terminals
