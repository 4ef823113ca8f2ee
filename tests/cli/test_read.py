"""``show``, ``tail`` and ``export`` against the real local server."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path

import orjson

from ingress_logging import SessionIngressClient
from ingress_logging.server import IngressServer


def _store(server: IngressServer, entries: list[dict]) -> str:
    sid = entries[0]["sessionId"]
    with SessionIngressClient(server.token, base_api_url=server.base_url) as client:
        for entry in entries:
            assert client.append_session_log(sid, entry, server.session_url(sid))
    return sid


def test_show_prints_time_type_and_a_one_line_summary(
    server: IngressServer, run_cli, transcript
) -> None:
    entries = transcript(7)
    sid = _store(server, entries)

    result = run_cli("show", sid)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    assert lines[0].startswith("2026-01-02 03:00:00  user ")
    assert lines[0].endswith("please do step 0")
    assert "assistant" in lines[1]
    assert "[tool_use Bash]" in lines[1]
    assert "[tool_result] output line 2 second" in lines[2]  # newlines folded
    assert "system/compact_boundary" in lines[4]
    assert lines[5].split() == ["summary", "Summary", "number", "5"]
    assert "file-history-snapshot" in lines[6]


def test_show_json_prints_the_stored_entries(server: IngressServer, run_cli, transcript) -> None:
    entries = transcript(9)
    sid = _store(server, entries)

    result = run_cli("show", "--json", sid)

    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == entries


def test_show_of_an_unknown_session_says_so(run_cli) -> None:
    result = run_cli("show", "never-written")

    assert result.returncode == 0
    assert result.stdout == ""
    assert "session never-written has no entries" in result.stderr


def test_a_hostile_session_id_is_refused_in_one_line(run_cli) -> None:
    result = run_cli("show", "../etc")

    assert result.returncode == 1
    assert result.stderr.startswith("Error: session id '../etc' may only contain")
    assert "Traceback" not in result.stderr


def test_debug_lets_the_traceback_through(run_cli) -> None:
    result = run_cli("--debug", "show", "../etc")

    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "InvalidSessionIdError" in result.stderr


def test_show_teleport_reads_the_events(
    server: IngressServer, run_cli, cli_env, transcript
) -> None:
    entries = transcript(5)
    sid = _store(server, entries)
    env = {
        **cli_env,
        "INGRESS_LOGGING_OAUTH_TOKEN": server.oauth_token,
        "INGRESS_LOGGING_OAUTH_ORG_UUID": server.org_uuid,
    }

    result = run_cli("show", "--teleport", "--json", sid, env=env)

    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == entries


def test_teleport_errors_are_words(server: IngressServer, run_cli, cli_env, transcript) -> None:
    sid = _store(server, transcript(2))
    base = {**cli_env, "INGRESS_LOGGING_OAUTH_TOKEN": server.oauth_token}

    not_uuid = run_cli(
        "show", "--teleport", sid, env={**base, "INGRESS_LOGGING_OAUTH_ORG_UUID": "nope"}
    )
    assert not_uuid.returncode == 1
    assert "organization uuid is not a UUID" in not_uuid.stderr

    other_org = {**base, "INGRESS_LOGGING_OAUTH_ORG_UUID": "00000000-0000-4000-8000-000000000000"}
    wrong_org = run_cli("show", "--teleport", sid, env=other_org)
    assert wrong_org.returncode == 1
    assert "403: the organization does not match" in wrong_org.stderr
    assert "teleport_events" not in wrong_org.stderr
    assert server.oauth_token not in wrong_org.stderr


def test_teleport_without_oauth_settings_is_a_usage_error(run_cli) -> None:
    result = run_cli("show", "--teleport", "some-session")

    assert result.returncode == 2
    assert "--teleport needs --oauth-token and --org-uuid" in result.stderr


def test_tail_prints_the_last_entries(server: IngressServer, run_cli, transcript) -> None:
    entries = transcript(12)
    sid = _store(server, entries)

    result = run_cli("tail", "-n", "3", "--json", sid)

    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == entries[-3:]


def test_tail_follow_prints_new_entries_as_they_arrive(
    server: IngressServer, cli_env, cli_command, started, transcript
) -> None:
    entries = transcript(10)
    sid = entries[0]["sessionId"]
    _store(server, entries[:4])
    proc = subprocess.Popen(
        [*cli_command, "tail", "-n", "2", "--follow", "--interval", "0.05", "--json", sid],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()

    def next_entry() -> dict:
        return orjson.loads(lines.get(timeout=30))

    assert [next_entry(), next_entry()] == entries[2:4]
    with SessionIngressClient(server.token, base_api_url=server.base_url) as client:
        for entry in entries[4:]:
            assert client.append_session_log(sid, entry, server.session_url(sid))
    assert [next_entry() for _ in entries[4:]] == entries[4:]
    proc.terminate()
    assert proc.wait(timeout=10) is not None
    assert lines.empty()  # nothing printed twice


def test_export_then_ship_round_trips_exactly(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(21)
    sid = entries[0]["sessionId"]
    source = jsonl(tmp_path / "source.jsonl", entries)
    assert run_cli("ship", str(source)).returncode == 0

    first = run_cli("export", sid, "-o", str(tmp_path / "first.jsonl"))
    assert first.returncode == 0, first.stderr
    assert f"exported 21 entries of {sid}" in first.stderr
    shipped = run_cli("ship", "--session", "round-trip-copy", str(tmp_path / "first.jsonl"))
    assert shipped.returncode == 0, shipped.stderr
    second = run_cli("export", "round-trip-copy", "-o", str(tmp_path / "second.jsonl"))
    assert second.returncode == 0, second.stderr

    exported = (tmp_path / "first.jsonl").read_bytes()
    assert (tmp_path / "second.jsonl").read_bytes() == exported
    exported_lines = exported.splitlines()
    assert [orjson.loads(line) for line in exported_lines] == entries
    assert exported_lines == [orjson.dumps(e) for e in entries]  # byte-equal JSON values
    assert server.entries("round-trip-copy") == entries


def test_export_to_stdout(server: IngressServer, run_cli, transcript) -> None:
    entries = transcript(3)
    sid = _store(server, entries)

    result = run_cli("export", sid, "-o", "-")

    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == b"".join(orjson.dumps(e) + b"\n" for e in entries)


def test_reads_fail_in_one_line_when_the_server_errs(
    server: IngressServer, run_cli, transcript
) -> None:
    sid = _store(server, transcript(2))
    server.faults.fail_next(5, method="GET")

    started_at = time.monotonic()
    result = run_cli("show", sid)

    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: could not read session {sid}: the server answered 5")
    assert "session_get_fail" not in result.stderr  # words, not an event name
    assert time.monotonic() - started_at < 30


def test_show_after_last_compact_starts_at_the_boundary(
    server: IngressServer, run_cli, transcript
) -> None:
    entries = transcript(12)  # boundaries at positions 4 and 11
    sid = _store(server, entries)
    last_boundary = max(i for i, e in enumerate(entries) if e.get("subtype") == "compact_boundary")

    result = run_cli("show", "--json", "--after-last-compact", sid)

    assert result.returncode == 0, result.stderr
    shown = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert shown == entries[last_boundary:]
    assert 0 < len(shown) < len(entries)


def test_json_lines_survive_unicode_line_separators(
    server: IngressServer, run_cli, transcript, tmp_path: Path
) -> None:
    """U+2028, U+2029 and U+0085 are legal raw in JSON, but str.splitlines() and
    many line readers split on them: the JSONL output escapes them, so every
    consumer sees one entry per line, and ship reads the escapes back exactly."""
    entries = transcript(3)
    entries[0]["message"]["content"] = "para\u2028line\u2029next\x85end"
    entries[1]["weird\u2028key"] = "v"
    sid = _store(server, entries)

    shown = run_cli("show", "--json", sid)
    exported = run_cli("export", sid, "-o", str(tmp_path / "out.jsonl"))
    copied = run_cli("ship", "--session", "separators-copy", str(tmp_path / "out.jsonl"))

    assert shown.returncode == 0, shown.stderr
    assert [orjson.loads(line) for line in shown.stdout.splitlines()] == entries
    assert exported.returncode == 0, exported.stderr
    data = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert [orjson.loads(line) for line in data.splitlines()] == entries
    assert copied.returncode == 0, copied.stderr
    assert server.entries("separators-copy") == entries


def test_tail_follow_keeps_following_through_a_server_outage(
    server: IngressServer, cli_env, cli_command, started, transcript
) -> None:
    """--follow reads "until Ctrl-C" (docs/cli.md): a read that fails while the
    server is down is reported once on stderr, and new entries are printed
    once it is back."""
    entries = transcript(3)
    sid = _store(server, entries[:1])
    proc = subprocess.Popen(
        [*cli_command, "tail", "--follow", "--interval", "0.05", "--json", sid],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    assert proc.stderr is not None
    for stream, sink in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=lambda s=stream, q=sink: [q.put(x) for x in s], daemon=True).start()
    assert orjson.loads(out.get(timeout=30)) == entries[0]

    server.stop()
    assert "still following" in err.get(timeout=30)  # the failed read, said once
    server.start()
    _store(server, entries[1:])

    assert [orjson.loads(out.get(timeout=30)) for _ in entries[1:]] == entries[1:]
    assert proc.poll() is None


def test_export_of_a_missing_session_fails_with_a_message(
    server: IngressServer, run_cli, tmp_path: Path
) -> None:
    out = tmp_path / "copy.jsonl"
    result = run_cli("export", "no-such-session", "-o", str(out))
    assert result.returncode == 1
    assert "session no-such-session has no entries (it does not exist)" in result.stderr
    assert not out.exists()


def test_export_to_an_unwritable_path_names_that_path(
    server: IngressServer, run_cli, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(2)
    assert run_cli("ship", str(jsonl(tmp_path / "t.jsonl", entries))).returncode == 0
    target = tmp_path / "missing-dir" / "copy.jsonl"
    result = run_cli("export", entries[0]["sessionId"], "-o", str(target))
    assert result.returncode == 1
    assert f"cannot write {target}: No such file or directory" in result.stderr
    assert ".__atomic-write" not in result.stderr


def test_a_read_from_a_server_that_is_down_says_why(
    ingress_server_factory, run_cli, cli_env
) -> None:
    gone = ingress_server_factory()
    url = gone.base_url
    gone.close()

    result = run_cli("show", "s1", env={**cli_env, "INGRESS_LOGGING_BASE_URL": url})

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: could not read session s1: no reply from the server (connection refused)"
    )
