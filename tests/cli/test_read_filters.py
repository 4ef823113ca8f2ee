"""``show``/``tail`` filters (--type, --level, --since, --grep) and ``tail --follow`` reading
only what is new (``?after=<uuid>``), against the real local server."""

from __future__ import annotations

import queue
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from ingress_logging import SessionIngressClient
from ingress_logging.cli._tail_after import Follower
from ingress_logging.server import IngressServer


def _store(server: IngressServer, sid: str, entries: list[dict[str, Any]]) -> str:
    with SessionIngressClient(server.token, base_api_url=server.base_url) as client:
        for entry in entries:
            assert client.append_session_log(sid, entry, server.session_url(sid))
    return sid


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mixed(sid: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {"type": "user", "uuid": f"{sid}-0", "timestamp": _stamp(now - timedelta(hours=3)),
         "message": {"role": "user", "content": "deploy the billing service"}},
        {"type": "assistant", "uuid": f"{sid}-1", "timestamp": _stamp(now - timedelta(hours=2)),
         "message": {"role": "assistant", "content": [{"type": "text", "text": "Deploying now"}]}},
        {"type": "system", "subtype": "log", "level": "debug", "logger": "app", "uuid": f"{sid}-2",
         "content": "cache warm", "timestamp": _stamp(now - timedelta(minutes=50))},
        {"type": "system", "subtype": "log", "level": "error", "logger": "app", "uuid": f"{sid}-3",
         "content": "deploy failed: quota", "timestamp": _stamp(now - timedelta(minutes=20))},
        {"type": "otel_log", "severity": {"text": "WARN", "number": 13}, "body": "slow disk",
         "uuid": f"{sid}-4", "timestamp": _stamp(now - timedelta(minutes=5))},
        {"type": "summary", "summary": "Billing deploy attempt"},
    ]  # fmt: skip


def _json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["--type", "assistant"], [1]),
        (["--type", "system/log", "--type", "summary"], [2, 3, 5]),
        (["--level", "warning"], [3, 4]),
        (["--level", "ERROR"], [3]),
        (["--since", "1h"], [2, 3, 4]),
        (["--since", "30m", "--level", "debug"], [3, 4]),
        (["--grep", "deploy"], [0, 3, 5]),
        (["--grep", "(?i)^deploy"], [0, 1, 3]),
        (["--grep", "quota|disk", "--type", "otel_log"], [4]),
    ],
)
def test_show_keeps_only_matching_entries(server, run_cli, args, kept) -> None:
    entries = _mixed("filters")
    sid = _store(server, "filters", entries)
    assert _json_lines(run_cli("show", "--json", *args, sid)) == [entries[i] for i in kept]


def test_since_takes_an_iso_time_and_the_human_output_is_filtered_too(server, run_cli) -> None:
    entries = _mixed("since-iso")
    sid = _store(server, "since-iso", entries)
    result = run_cli("show", "--since", entries[3]["timestamp"], sid)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "deploy failed: quota" in lines[0]
    assert "slow disk" in lines[1]


def test_no_match_is_said_on_stderr(server, run_cli) -> None:
    sid = _store(server, "nomatch", _mixed("nomatch"))
    result = run_cli("show", "--type", "otel_span", sid)
    assert result.returncode == 0
    assert result.stdout == ""
    assert "none of the 6 entries of nomatch match" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "Invalid value for '--since': 'yesterday' is neither"),
        (["--grep", "(unclosed"], "Invalid value for '--grep': not a regular expression"),
        (["--level", "loud"], "Invalid value for '--level': 'loud' is not one of"),
    ],
)
def test_bad_filters_are_usage_errors(run_cli, args, message) -> None:
    result = run_cli("show", *args, "any-session")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_tail_prints_the_last_matching_entries(server, run_cli) -> None:
    entries = _mixed("tailf")
    sid = _store(server, "tailf", entries)
    got = _json_lines(run_cli("tail", "-n", "2", "--json", "--level", "debug", sid))
    assert got == [entries[3], entries[4]]


def _follow(cli_command, cli_env, started, *args: str) -> queue.Queue[str]:
    proc = subprocess.Popen(
        [*cli_command, "tail", "--follow", "--interval", "0.05", "--json", *args],
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
    return lines


def test_tail_follow_reads_only_what_follows_the_last_entry(
    server: IngressServer, cli_env, cli_command, started
) -> None:
    entries = _mixed("follow")
    sid = _store(server, "follow", entries[:2])
    lines = _follow(cli_command, cli_env, started, "-n", "1", "--level", "info", sid)
    server.wait_for_requests(len(server.requests) + 2, timeout=30)
    for entry in entries[2:]:  # straight into the store: the only GETs are tail's
        payload = orjson.dumps(entry).decode()
        assert server.store.append(sid, entry, payload, None, check=False).stored
    # only the new entries at info and above, each once
    assert orjson.loads(lines.get(timeout=30)) == entries[3]
    assert orjson.loads(lines.get(timeout=30)) == entries[4]
    reads = [r for r in server.requests if r.method == "GET" and r.session_id == sid]
    polls = [r.query for r in reads[1:]]  # reads[0]: tail's first, whole read
    # every poll asks only for what follows the last entry it has seen
    assert polls
    assert all(query.startswith("after=") for query in polls)
    assert polls[0] == f"after={entries[1]['uuid']}"
    assert lines.empty()


def test_follower_takes_only_what_follows_the_anchor() -> None:
    """What ``tail --follow`` makes of replies to ``?after=``, from both kinds of server."""
    a, b = {"uuid": "a"}, {"uuid": "b"}
    s1, s2 = {"type": "summary", "summary": "1"}, {"type": "summary", "summary": "2"}
    c = {"uuid": "c"}
    follower = Follower([a, s1], incremental=True)
    assert follower.after == "a"
    # a server that knows after=: only what follows a (s1 was already printed)
    assert follower.new([s1, s2]) == [s2]
    assert follower.after == "a"
    assert follower.new([s1, s2, b]) == [b]
    assert follower.after == "b"
    assert follower.new([]) == []
    # a server that ignores after=: the whole session, cut after the anchor
    assert follower.new([a, s1, s2, b, c]) == [c]
    assert follower.after is None  # from now on, plain reads
    assert follower.new([a, s1, s2, b, c, s1]) == [s1]
