"""``ship --follow``: the real command following real files, against the real server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from ingress_logging.server import IngressServer


@pytest.fixture
def follow(cli_env, cli_command, tmp_path: Path, started):
    """Start ``ship --follow ARGS...`` (killed at teardown); stderr goes to a file."""

    def start(*args: str, state: Path | None = None, env: dict | None = None):
        log = open(tmp_path / f"follow-{len(started)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                *cli_command,
                "ship",
                "--follow",
                "--state-file",
                str(state or tmp_path / "state.json"),
                *args,
            ],
            env=env or cli_env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        log.close()
        started.append(proc)
        return proc

    return start


def line(entry: dict) -> bytes:
    return orjson.dumps(entry) + b"\n"


def saved(state: Path, path: Path) -> dict:
    """The follower's registry entry for ``path`` ({} before it has one)."""
    try:
        return json.loads(state.read_text())["files"].get(str(path), {})
    except FileNotFoundError:
        return {}


def stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out, Path(proc.log_path).read_text()  # type: ignore[attr-defined]


def test_lines_are_shipped_as_they_are_written_and_a_partial_line_waits(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    entries = transcript(6)
    sid = entries[0]["sessionId"]
    path = tmp_path / "live.jsonl"
    path.write_bytes(line(entries[0]) + line(entries[1]))
    proc = follow(str(path))

    assert wait_for(lambda: len(server.entries(sid)) == 2, timeout=30), server.entries(sid)
    third = line(entries[2])
    with open(path, "ab") as f:
        f.write(third[:20])  # the writer is in the middle of a line
        f.flush()
        assert not wait_for(lambda: len(server.entries(sid)) > 2, timeout=1.5)
        f.write(third[20:] + line(entries[3]))
    size = path.stat().st_size
    assert wait_for(lambda: saved(tmp_path / "state.json", path).get("offset") == size, timeout=30)

    code, out, err = stop(proc)

    assert code == 0, err
    assert server.entries(sid) == entries[:4]
    assert f"session {sid}: 4 sent, 0 skipped" in out
    state = json.loads((tmp_path / "state.json").read_text())
    entry = state["files"][str(path)]
    st = os.stat(path)
    assert (entry["dev"], entry["ino"], entry["offset"]) == (st.st_dev, st.st_ino, st.st_size)
    assert entry["last_uuid"] == entries[3]["uuid"]


def test_new_files_under_a_watched_directory_and_globs_are_picked_up(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    projects = tmp_path / "projects"
    (projects / "repo-a").mkdir(parents=True)
    other = tmp_path / "other"
    other.mkdir()
    a, b, c = transcript(3), transcript(3), transcript(3)
    (projects / "repo-a" / "one.jsonl").write_bytes(b"".join(map(line, a)))
    proc = follow(str(projects), str(other / "*.jsonl"))
    assert wait_for(lambda: len(server.entries(a[0]["sessionId"])) == 3, timeout=30)

    (projects / "repo-b").mkdir()
    (projects / "repo-b" / "two.jsonl").write_bytes(b"".join(map(line, b)))
    (projects / "notes.txt").write_text("not a transcript\n")
    (other / "three.jsonl").write_bytes(b"".join(map(line, c)))

    for entries in (b, c):
        assert wait_for(lambda e=entries: server.entries(e[0]["sessionId"]) == e, timeout=30)
    code, _out, err = stop(proc)
    assert code == 0, err
    assert "notes.txt" not in err
    assert "watching with file notifications" in err
    assert f"new file {projects / 'repo-a' / 'one.jsonl'}" not in err  # there at the start
    assert f"new file {projects / 'repo-b' / 'two.jsonl'}" in err


def test_truncation_rotation_and_removal_are_noticed(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    entries = transcript(12)
    sid = entries[0]["sessionId"]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(map(line, entries[:3])))
    proc = follow(str(path))
    assert wait_for(lambda: len(server.entries(sid)) == 3, timeout=30)

    path.write_bytes(b"".join(map(line, entries[3:5])))  # truncated and rewritten
    assert wait_for(lambda: len(server.entries(sid)) == 5, timeout=30)
    rotated = tmp_path / "t.jsonl.1"
    with open(path, "ab") as f:
        f.write(line(entries[5]))
    os.rename(path, rotated)
    with open(rotated, "ab") as f:
        f.write(line(entries[6]))  # written to the old file after the rename
    path.write_bytes(b"".join(map(line, entries[7:9])))
    assert wait_for(lambda: len(server.entries(sid)) == 9, timeout=30)
    path.unlink()
    assert wait_for(lambda: saved(tmp_path / "state.json", path) == {}, timeout=30)

    code, _out, err = stop(proc)
    assert code == 0, err
    assert server.entries(sid) == entries[:9]
    assert "was truncated" in err
    assert "was replaced (rotated)" in err
    assert "was removed; let go" in err


def test_a_file_renamed_before_its_replacement_exists_goes_on_from_its_place(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    # A rotation renames the file, then creates the new one: in between the
    # follower may find nothing at the path. The renamed file, found again,
    # must go on from its confirmed offset: read from its start, its lines
    # without a uuid would be stored twice.
    watched = tmp_path / "projects"
    watched.mkdir()
    entries = transcript(4)
    sid = entries[0]["sessionId"]
    summary = {"type": "summary", "summary": "twin", "leafUuid": entries[0]["uuid"]}
    first = [entries[0], dict(summary), entries[1], dict(summary)]
    path = watched / "s.jsonl"
    path.write_bytes(b"".join(map(line, first)))
    state = tmp_path / "state.json"
    proc = follow(str(watched), state=state)
    assert wait_for(lambda: server.entries(sid) == first, timeout=30), server.entries(sid)
    assert wait_for(lambda: saved(state, path).get("line") == len(first), timeout=30)

    rotated = watched / "s.rotated-1.jsonl"
    os.rename(path, rotated)  # nothing at the old name yet
    # Only the follower finding the path gone takes it out of the registry
    # (the renamed file is still open and followed until then).
    assert wait_for(lambda: saved(state, path) == {}, timeout=30)
    with open(rotated, "ab") as f:
        f.write(line(entries[2]))
    assert wait_for(lambda: len(server.entries(sid)) >= 5, timeout=30)
    path.write_bytes(line(entries[3]))  # the replacement, at last
    assert wait_for(lambda: len(server.entries(sid)) >= 6, timeout=30)

    code, _out, err = stop(proc)
    assert code == 0, err
    assert server.entries(sid) == [*first, entries[2], entries[3]]
    assert "was removed; let go" in err


def test_a_hundred_files_at_once_with_polling(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    sessions = [transcript(4) for _ in range(100)]
    for i, entries in enumerate(sessions):
        (tmp_path / f"f{i:03d}.jsonl").write_bytes(b"".join(map(line, entries[:2])))
    proc = follow("--poll", str(tmp_path / "f*.jsonl"))

    def complete(n: int) -> bool:
        return all(len(server.entries(e[0]["sessionId"])) == n for e in sessions)

    assert wait_for(lambda: complete(2), timeout=60)
    for i, entries in enumerate(sessions):
        with open(tmp_path / f"f{i:03d}.jsonl", "ab") as f:
            f.write(b"".join(map(line, entries[2:])))
    assert wait_for(lambda: complete(4), timeout=60)

    code, out, err = stop(proc)
    assert code == 0, err
    assert "polling" in err
    for entries in sessions:
        assert server.entries(entries[0]["sessionId"]) == entries
    assert len([ln for ln in out.splitlines() if ln.startswith("session ")]) == 100


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_an_idle_follower_uses_next_to_no_cpu(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    entries = transcript(3)
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(map(line, entries)))
    proc = follow(str(tmp_path))
    size = path.stat().st_size
    assert wait_for(lambda: saved(tmp_path / "state.json", path).get("offset") == size, timeout=30)

    before = _cpu_seconds(proc.pid)
    proc_wait = wait_for(lambda: proc.poll() is not None, timeout=3.0)  # the idle window
    used = _cpu_seconds(proc.pid) - before

    assert not proc_wait
    assert used < 0.3, f"{used:.2f} s of CPU in 3 s of idling"
    code, _out, err = stop(proc)
    assert code == 0, err


def test_an_outage_is_reported_as_the_last_error_and_nothing_is_lost(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    entries = transcript(8)
    sid = entries[0]["sessionId"]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(map(line, entries[:4])))
    base_url = server.base_url
    server.stop()
    proc = follow("--status-every", "0.2", str(path))
    log = Path(proc.log_path)
    refused = f"cannot connect to {base_url} (connection refused)"

    assert wait_for(
        lambda: f"follow: 0 lines shipped from 1 files; last error: {refused}" in log.read_text(),
        timeout=30,
    )
    with open(path, "ab") as f:
        f.write(b"".join(map(line, entries[4:])))
    server.start()
    assert wait_for(lambda: len(server.entries(sid)) == 8, timeout=30)
    assert wait_for(lambda: "delivering again" in log.read_text(), timeout=30)
    assert wait_for(
        lambda: (
            "follow: 8 lines shipped from 1 files (t.jsonl 8); last error: "
            f"{refused} (recovered)" in log.read_text()
        ),
        timeout=30,
    )

    code, _out, err = stop(proc)
    assert code == 0, err
    assert server.entries(sid) == entries


def test_one_state_file_takes_one_follower_and_help_shows_where_it_is(
    follow, run_cli, tmp_path: Path, wait_for
) -> None:
    (tmp_path / "t.jsonl").write_bytes(b"")
    first = follow(str(tmp_path / "t.jsonl"))
    assert wait_for(lambda: "state in" in Path(first.log_path).read_text(), timeout=30)

    second = run_cli("ship", "--follow", "--state-file", str(tmp_path / "state.json"), "x.jsonl")
    shown = run_cli("ship", "--help")

    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"Error: another 'ship --follow' is using the state file {tmp_path / 'state.json'}; "
        "stop it or pass another --state-file"
    ]
    assert "follow-state.json" in shown.stdout
    assert "INGRESS_LOGGING_SHIP_STATE_FILE" in shown.stdout
    code, _out, err = stop(first)
    assert code == 0, err


def test_a_damaged_state_file_is_moved_aside_with_one_clear_line(run_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"files": {"/x": {"dev": ')

    result = run_cli("ship", "--follow", "--state-file", str(state), str(tmp_path))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: the state file {state} is damaged (moved to {state}.damaged); "
        "run again to start over (entries already stored are skipped)"
    ]
    assert (tmp_path / "state.json.damaged").read_text().startswith('{"files"')
    assert not state.exists()


def test_a_new_file_that_got_a_deleted_files_inode_is_read_from_its_start(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    old, new = transcript(3), transcript(10)  # the new file is the longer one
    path = tmp_path / "t.jsonl"
    state = tmp_path / "state.json"
    path.write_bytes(b"".join(map(line, old)))
    proc = follow(str(path))
    size = path.stat().st_size
    assert wait_for(lambda: saved(state, path).get("offset") == size, timeout=30)
    assert stop(proc)[0] == 0
    path.unlink()
    path.write_bytes(b"".join(map(line, new)))
    # What the file system does when it reuses the inode number of the deleted file:
    registry = json.loads(state.read_text())
    st = path.stat()
    registry["files"][str(path)].update(dev=st.st_dev, ino=st.st_ino)
    state.write_text(json.dumps(registry))

    proc = follow(str(path))
    assert wait_for(lambda: saved(state, path).get("offset") == st.st_size, timeout=30)
    code, _out, err = stop(proc)

    assert code == 0, err
    assert server.entries(old[0]["sessionId"]) == old
    assert server.entries(new[0]["sessionId"]) == new


def test_lines_without_a_session_wait_for_one_or_go_to_the_given_session(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    entries = transcript(7)
    snapshot = entries[6]  # a file-history-snapshot: no sessionId
    sid = entries[0]["sessionId"]
    waiting = tmp_path / "waiting"
    waiting.mkdir()
    path = waiting / "t.jsonl"
    path.write_bytes(line(snapshot))
    proc = follow(str(path), state=tmp_path / "a.json")
    log = Path(proc.log_path)
    assert wait_for(lambda: "no sessionId yet" in log.read_text(), timeout=30)
    with open(path, "ab") as f:
        f.write(line(entries[0]))  # names the session: both lines go there
    assert wait_for(lambda: server.entries(sid) == [snapshot, entries[0]], timeout=30)
    assert stop(proc)[0] == 0

    other = tmp_path / "other.jsonl"
    other.write_bytes(line(snapshot) + line(entries[1]))
    proc = follow("--session", "gathered", str(other), state=tmp_path / "b.json")
    assert wait_for(lambda: server.entries("gathered") == [snapshot, entries[1]], timeout=30)
    assert stop(proc)[0] == 0


def test_ctrl_c_stops_cleanly_and_saves_the_state(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for
) -> None:
    entries = transcript(5)
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(map(line, entries)))
    proc = follow(str(path))
    assert wait_for(lambda: len(server.entries(entries[0]["sessionId"])) == 5, timeout=30)

    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    err = Path(proc.log_path).read_text()

    assert proc.returncode == 130, err
    assert "Traceback" not in err
    match = re.search(
        r"stopped: (\d+) lines shipped, 0 already stored, 0 bad lines; state saved to (.+)", err
    )
    assert match is not None, err
    assert match.group(2) == str(tmp_path / "state.json")
    shipped = int(match.group(1))
    assert shipped == 5  # the line in flight at the signal is finished first
    offset = sum(len(line(e)) for e in entries[:shipped])
    assert saved(tmp_path / "state.json", path)["offset"] == offset  # saved at the stop


@pytest.mark.parametrize("fault", ["error_after_commit_next", "drop_after_commit_next"])
def test_a_lost_reply_to_a_line_without_uuid_does_not_store_it_twice(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for, fault
) -> None:
    entries = transcript(2)
    sid = entries[0]["sessionId"]
    summary = {"type": "summary", "summary": "short", "leafUuid": entries[0]["uuid"]}
    path = tmp_path / "t.jsonl"
    path.write_bytes(line(entries[0]))
    proc = follow(str(path))
    assert wait_for(lambda: len(server.entries(sid)) == 1, timeout=30)

    getattr(server.faults, fault)(1)  # stored, then the reply is lost
    with open(path, "ab") as f:
        f.write(line(summary))
    assert wait_for(lambda: len(server.entries(sid)) >= 2, timeout=30)
    with open(path, "ab") as f:
        f.write(line(entries[1]))
    size = path.stat().st_size
    assert wait_for(lambda: saved(tmp_path / "state.json", path).get("offset") == size, timeout=30)
    code, _out, err = stop(proc)

    assert code == 0, err
    assert server.entries(sid) == [entries[0], summary, entries[1]]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_burst_of_signals_while_lines_stream_stops_between_lines(
    server: IngressServer, follow, transcript, tmp_path: Path, wait_for, signum, code
) -> None:
    # The signals land while the main thread is inside the client (locks,
    # sockets, the retry loop) or the follow state: the handler only records
    # the stop, so none of that is cut in the middle and a later signal
    # cannot cut the final save short.
    entries = transcript(1000)
    sid = entries[0]["sessionId"]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"".join(map(line, entries)))
    proc = follow(str(path))
    assert wait_for(lambda: len(server.entries(sid)) >= 20, timeout=30)

    for _ in range(30):
        proc.send_signal(signum)
    proc.communicate(timeout=30)
    err = Path(proc.log_path).read_text()

    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    assert "Error" not in err, err
    stored = server.entries(sid)
    shipped = len(stored)
    assert 20 <= shipped < len(entries), err  # stopped while lines streamed
    assert stored == entries[:shipped]  # each once, in order
    # The line in flight was finished: what is stored is exactly what is confirmed.
    assert f"stopped: {shipped} lines shipped, 0 already stored" in err
    state = saved(tmp_path / "state.json", path)
    assert state["offset"] == sum(len(line(e)) for e in entries[:shipped])
    assert state["last_uuid"] == [e["uuid"] for e in stored if "uuid" in e][-1]

    again = follow(str(path))
    assert wait_for(lambda: len(server.entries(sid)) == len(entries), timeout=60)
    assert wait_for(lambda: saved(tmp_path / "state.json", path)["offset"] == path.stat().st_size)
    rc, out, err = stop(again)
    assert rc == 0, err
    assert server.entries(sid) == entries
    assert f"session {sid}: {len(entries) - shipped} sent, 0 skipped" in out


def test_a_stop_cuts_the_pause_before_a_retry_short_and_the_line_is_sent_later(
    server: IngressServer, follow, cli_env, transcript, tmp_path: Path, wait_for
) -> None:
    entries = transcript(2)
    sid = entries[0]["sessionId"]
    path = tmp_path / "t.jsonl"
    path.write_bytes(line(entries[0]))
    server.faults.fail_next(1, status=503)  # the first append is answered 503...
    # ...and the client then pauses 600 s before its next attempt.
    proc = follow(str(path), env={**cli_env, "INGRESS_LOGGING_BASE_DELAY": "600"})
    assert wait_for(lambda: server.faults.pending() == 0, timeout=30)

    code, _out, err = stop(proc)  # communicate() gives it 30 s, not 600

    assert code == 0, err
    assert "stopped: 0 lines shipped" in err
    assert server.entries(sid) == []
    assert saved(tmp_path / "state.json", path).get("offset", 0) == 0

    again = follow(str(path))
    assert wait_for(lambda: server.entries(sid) == entries[:1], timeout=30)
    assert wait_for(lambda: saved(tmp_path / "state.json", path)["offset"] == path.stat().st_size)
    assert stop(again)[0] == 0
    assert server.entries(sid) == entries[:1]
