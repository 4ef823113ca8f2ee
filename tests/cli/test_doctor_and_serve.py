"""``doctor`` with good and broken settings; ``serve`` from the shell; ``--help``."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ingress_logging.server import IngressServer


def _line(stdout: str, what: str) -> str:
    for line in stdout.splitlines():
        if line.split()[1:2] == [what]:
            return line
    raise AssertionError(f"no {what!r} line in:\n{stdout}")


def test_doctor_passes_against_a_running_server(server: IngressServer, run_cli) -> None:
    result = run_cli("doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    assert _line(result.stdout, "url").startswith("ok")
    assert server.base_url in _line(result.stdout, "url")
    assert _line(result.stdout, "token").endswith("set, from INGRESS_LOGGING_TOKEN")
    assert "the token can read" in _line(result.stdout, "server")
    assert _line(result.stdout, "append").startswith("ok")
    assert server.entries("ingress-logging-doctor-probe") == []  # the probe stores nothing
    assert _line(result.stdout, "clock").startswith("ok")
    assert server.token not in result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_doctor_names_a_url_template_without_placeholder(run_cli, cli_env) -> None:
    env = {**cli_env, "INGRESS_LOGGING_URL": "http://127.0.0.1:9/v1/sessions"}

    result = run_cli("doctor", env=env)

    assert result.returncode == 1
    line = _line(result.stdout, "config")
    assert line.startswith("FAIL")
    assert "must contain '{session_id}'" in line
    assert "problem(s) found" in result.stdout


def test_doctor_without_a_token_says_how_to_set_one(
    server: IngressServer, run_cli, bare_env
) -> None:
    env = bare_env(INGRESS_LOGGING_BASE_URL=server.base_url)

    result = run_cli("doctor", env=env)

    assert result.returncode == 1
    assert _line(result.stdout, "token").startswith("FAIL")
    assert "set INGRESS_LOGGING_TOKEN" in result.stdout


def test_doctor_reports_a_rejected_token_without_printing_it(
    server: IngressServer, run_cli, cli_env
) -> None:
    env = {**cli_env, "INGRESS_LOGGING_TOKEN": "stale-token-123"}

    result = run_cli("doctor", env=env)

    assert result.returncode == 1
    assert "rejected the token (401)" in _line(result.stdout, "server")
    assert "stale-token-123" not in result.stdout + result.stderr


def test_doctor_reports_a_missing_token_file(run_cli, cli_env, tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env.items() if k != "INGRESS_LOGGING_TOKEN"}
    env["INGRESS_LOGGING_TOKEN_FILE"] = str(tmp_path / "nope")

    result = run_cli("doctor", env=env)

    assert result.returncode == 1
    assert _line(result.stdout, "token").endswith("does not exist")


def test_doctor_reports_an_unreachable_server(ingress_server_factory, run_cli, cli_env) -> None:
    gone = ingress_server_factory()
    url = gone.base_url
    gone.close()

    result = run_cli("doctor", env={**cli_env, "INGRESS_LOGGING_BASE_URL": url})

    assert result.returncode == 1
    assert f"cannot connect to {url} (connection refused)" in _line(result.stdout, "server")
    assert "Traceback" not in result.stderr


def test_doctor_fails_on_a_wrong_url_path(server: IngressServer, run_cli, cli_env) -> None:
    # A 404 to the read is "no such session" as far as the protocol goes; the
    # append probe tells a wrong route apart, so doctor does not pass what ship would fail.
    env = {**cli_env, "INGRESS_LOGGING_URL": server.base_url + "/v1/wrong/{session_id}"}

    result = run_cli("doctor", env=env)

    assert result.returncode == 1, result.stdout
    url_lines = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["url"]]
    assert url_lines[-1].startswith("FAIL")
    assert "no such route (404 to an append): is the URL path right?" in url_lines[-1]
    assert "all checks passed" not in result.stdout


def test_doctor_refuses_plain_http_to_a_remote_host(run_cli, cli_env) -> None:
    env = {**cli_env, "INGRESS_LOGGING_BASE_URL": "http://ingress.example.com"}

    result = run_cli("doctor", env=env)

    assert result.returncode == 1
    assert "refusing to send a bearer token over plain http" in _line(result.stdout, "url")


def test_serve_runs_the_server_from_the_shell(
    cli_command, started, run_cli, bare_env, transcript, jsonl, tmp_path: Path
) -> None:
    env = bare_env(INGRESS_LOGGING_TOKEN="serve-token")
    proc = subprocess.Popen(
        [*cli_command, "serve", "--port", "0", "--db", str(tmp_path / "s.db")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    assert proc.stderr is not None
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stderr.readline())
    assert match is not None
    entries = transcript(5)
    path = jsonl(tmp_path / "t.jsonl", entries)
    client_env = {**env, "INGRESS_LOGGING_BASE_URL": match.group(1)}

    shipped = run_cli("ship", str(path), env=client_env)
    shown = run_cli("show", "--json", entries[0]["sessionId"], env=client_env)

    assert shipped.returncode == 0, shipped.stderr
    assert len(shown.stdout.splitlines()) == 5
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_serve_with_rtt_puts_a_round_trip_in_front(
    cli_command, started, bare_env, tmp_path: Path
) -> None:
    env = bare_env(INGRESS_LOGGING_TOKEN="serve-token")
    proc = subprocess.Popen(
        [*cli_command, "serve", "--port", "0", "--rtt", "200ms", "--db", str(tmp_path / "s.db")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    assert proc.stderr is not None
    direct = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stderr.readline())
    # The announcement's lines (viewer, OAuth org, round trip) end with the delayed address.
    lines = [proc.stderr.readline() for _ in range(3)]
    delayed = re.search(r"200 ms round trip: (http://127\.0\.0\.1:\d+)", "".join(lines))
    assert direct is not None
    assert delayed is not None
    assert delayed.group(1) != direct.group(1)
    url = f"{delayed.group(1)}/v1/session_ingress/session/s"
    auth = {"Authorization": "Bearer serve-token"}
    with httpx.Client(timeout=10) as client:
        assert client.put(url, json={"type": "user", "uuid": "u"}, headers=auth).status_code == 201
        sent = time.monotonic()
        read = client.get(url, headers=auth)
        assert time.monotonic() - sent >= 0.2
    assert read.json()["loglines"][0]["uuid"] == "u"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--faults", "{oops"], "Invalid value for --faults: not valid JSON"),
        (["serve", "--faults", '{"no_such_switch": 1}'], "bad fault switches"),
        (["serve", "--rtt", "soon"], "Invalid value for --rtt: not a duration"),
    ],
)
def test_serve_rejects_bad_fault_switches_in_one_line(run_cli, args, message) -> None:
    result = run_cli(*args)

    assert result.returncode in (1, 2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_needs_a_token(run_cli, bare_env) -> None:
    result = run_cli("serve", env=bare_env())

    assert result.returncode == 2
    assert "serve needs a token" in result.stderr


@pytest.mark.parametrize("command", ["serve", "ship", "show", "tail", "export", "doctor"])
def test_every_command_has_help_with_environment_variables(run_cli, command: str) -> None:
    result = run_cli(command, "--help")

    assert result.returncode == 0
    assert f"Usage: ingress-logging {command}" in result.stdout
    assert "env var:" in result.stdout or command == "doctor"


def test_doctor_reports_a_plugin_that_cannot_load(run_cli, cli_env, tmp_path: Path) -> None:
    # A real installed distribution (found on PYTHONPATH) whose entry point is broken.
    dist = tmp_path / "site" / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ingress_logging]\nbroken = no_such_module_xyz\n")
    env = {**cli_env, "PYTHONPATH": str(tmp_path / "site")}

    result = run_cli("doctor", env=env)

    assert result.returncode == 1
    assert _line(result.stdout, "plugins").startswith("FAIL")
    assert "no_such_module_xyz" in _line(result.stdout, "plugins")
    assert "Traceback" not in result.stderr
