"""The blocking entry points: serve() and ``python -m ingress_logging.server``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import httpx
import pytest

from ingress_logging.errors import ConfigError
from ingress_logging.server import IngressServer, serve


def test_serve_blocks_until_stopped_and_applies_faults(tmp_path, monkeypatch):
    monkeypatch.delenv("INGRESS_LOGGING_TOKEN", raising=False)
    ready: list[IngressServer] = []
    is_ready, stop = threading.Event(), threading.Event()

    def on_ready(srv: IngressServer) -> None:
        ready.append(srv)
        is_ready.set()

    thread = threading.Thread(
        target=serve,
        kwargs={
            "port": 0,
            "db": str(tmp_path / "x.db"),
            "token": "T",
            "faults": {"script": [503]},
            "stop": stop,
            "announce": False,
            "on_ready": on_ready,
        },
    )
    thread.start()
    try:
        assert is_ready.wait(5.0)
        srv = ready[0]
        url = srv.session_url("s")
        with httpx.Client() as c:
            assert (
                c.put(url, json={"uuid": "a"}, headers={"Authorization": "Bearer T"}).status_code
                == 503
            )
            assert (
                c.put(url, json={"uuid": "a"}, headers={"Authorization": "Bearer T"}).status_code
                == 201
            )
            oauth = {"Authorization": "Bearer T", "x-organization-uuid": srv.org_uuid}
            assert c.get(srv.teleport_url("s"), headers=oauth).status_code == 200
    finally:
        stop.set()
        thread.join(5.0)
    assert not thread.is_alive()
    assert not srv.running


def test_serve_without_any_token_refuses_to_start(monkeypatch):
    monkeypatch.delenv("INGRESS_LOGGING_TOKEN", raising=False)
    with pytest.raises(ConfigError):
        serve(port=0, db=":memory:", announce=False)


def test_module_cli_serves_over_http_and_never_prints_the_token(tmp_path):
    token = "cli-token-do-not-print"
    env = {k: v for k, v in os.environ.items() if k != "INGRESS_LOGGING_TOKEN"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingress_logging.server",
            "--port",
            "0",
            "--db",
            str(tmp_path / "cli.db"),
            "--token",
            token,
            "--latency",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert match, first
        url = f"{match.group(0)}/v1/session_ingress/session/s"
        with httpx.Client() as c:
            r = c.put(url, json={"uuid": "a"}, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=10)
    assert token not in first + rest


def _module_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ingress_logging.server ARGS`` to its end (for the ones that fail fast)."""
    return subprocess.run(
        [sys.executable, "-m", "ingress_logging.server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_module_cli_rejects_a_bad_fault_spec(tmp_path):
    result = _module_cli(
        "--port", "0", "--db", ":memory:", "--token", "T", "--faults", '{"latency": -5}'
    )
    assert result.returncode == 2
    assert "latency" in result.stderr


def test_module_cli_reports_a_taken_port(ingress_server):
    result = _module_cli("--port", str(ingress_server.port), "--db", ":memory:", "--token", "T")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{ingress_server.port}: address already in use" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_module_cli_shuts_down_cleanly_on_sigterm(tmp_path):
    """Process managers (systemd, docker, CI) stop a server with SIGTERM: exit 0, data kept."""
    import signal

    db = tmp_path / "term.db"
    env = {k: v for k, v in os.environ.items() if k != "INGRESS_LOGGING_TOKEN"}
    args = [sys.executable, "-m", "ingress_logging.server", "--port", "0", "--db", str(db)]
    proc = subprocess.Popen([*args, "--token", "T"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        match = re.search(r"http://127\.0\.0\.1:\d+", proc.stderr.readline())
        assert match
        url = f"{match.group(0)}/v1/session_ingress/session/s"
        r = httpx.put(url, json={"uuid": "a"}, headers={"Authorization": "Bearer T"})
        assert r.status_code == 201
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest
    with IngressServer(db=str(db)) as again:
        assert again.entries("s") == [{"uuid": "a"}]


def test_sigterm_right_after_the_announcement_is_still_a_clean_exit(tmp_path):
    """The handler is in place before the address is printed: no window where SIGTERM kills."""
    import signal

    env = {k: v for k, v in os.environ.items() if k != "INGRESS_LOGGING_TOKEN"}
    args = [sys.executable, "-m", "ingress_logging.server", "--port", "0", "--db", ":memory:"]
    proc = subprocess.Popen([*args, "--token", "T"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, rest
