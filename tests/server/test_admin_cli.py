"""The operator's commands, run as a user would: ``tokens``, ``migrate``,
``sessions``, and ``serve`` with named tokens, workers, and its error messages."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ingress_logging.server.store.sqlite import _V1, SCHEMA_VERSION

SCRIPT = Path(sys.executable).with_name("ingress-logging")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [shutil.which("ingress-logging") or "false"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    env.update(extra)
    return env


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [*COMMAND, *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def db(tmp_path: Path, store_db: str) -> str:
    """A store two processes can share: a SQLite file, or the PostgreSQL schema."""
    return str(tmp_path / "team.db") if store_db == ":memory:" else store_db


def _serve(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*COMMAND, "serve", "--port", "0", *args], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"https?://127\.0\.0\.1:\d+", line)
    assert match, line + proc.stderr.read() if proc.poll() is not None else line
    return proc, match.group(0)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def test_tokens_create_list_revoke_and_serve_with_them_alone(db: str):
    created = _cli("tokens", "create", "--name", "ci", "--scope", "append", "--db", db)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("ilt_")
    assert "only this once" in created.stderr
    reader = _cli("tokens", "create", "--name", "viewer", "--scope", "read", "--db", db)
    listed = _cli("tokens", "list", "--db", db)
    assert listed.returncode == 0
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [
        ["ci", "append"],
        ["viewer", "read"],
    ]
    assert token not in listed.stdout + listed.stderr
    duplicate = _cli("tokens", "create", "--name", "ci", "--scope", "read", "--db", db)
    assert duplicate.returncode == 1
    assert "exists" in duplicate.stderr

    proc, url = _serve("--db", db, env=_env())  # no development token at all
    try:
        auth = {"Authorization": f"Bearer {token}"}
        put = httpx.put(url + "/v1/session_ingress/session/s", json={"uuid": "a"}, headers=auth)
        assert put.status_code == 201
        listing = _cli(
            "sessions",
            env=_env(INGRESS_LOGGING_BASE_URL=url, INGRESS_LOGGING_TOKEN=reader.stdout.strip()),
        )
        assert listing.returncode == 0, listing.stderr
        assert listing.stdout.split("\t")[:2] == ["s", "1"]
        refused = _cli(
            "sessions", env=_env(INGRESS_LOGGING_BASE_URL=url, INGRESS_LOGGING_TOKEN=token)
        )
        assert refused.returncode == 1
        assert "403" in refused.stderr
        assert _cli("tokens", "revoke", "ci", "--db", db).returncode == 0
        again = httpx.put(url + "/v1/session_ingress/session/s", json={"uuid": "b"}, headers=auth)
        assert again.status_code == 401
    finally:
        err = _stop(proc)
    assert token not in err
    assert '"status":201' in err  # the access log, one JSON line per request


def test_revoking_an_unknown_token_fails(db: str):
    result = _cli("tokens", "revoke", "nobody", "--db", db)
    assert result.returncode == 1
    assert "no token named 'nobody'" in result.stderr


def test_migrate_upgrades_an_old_sqlite_database(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    conn.close()
    result = _cli("migrate", "--db", str(path))
    assert result.returncode == 0, result.stderr
    assert f"schema version {SCHEMA_VERSION}" in result.stdout
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_serve_names_a_database_it_cannot_open(tmp_path: Path):
    bad = tmp_path / "missing-dir" / "x.db"
    result = _cli("serve", "--port", "0", "--db", str(bad), "--token", "T")
    assert result.returncode == 1
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_warns_about_plain_http_beyond_loopback_and_names_the_address(tmp_path: Path):
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the bind fails after the warning
    result = _cli("serve", "--host", "192.0.2.1", "--port", "0", "--db", ":memory:", "--token", "T")
    assert "plain HTTP" in result.stderr
    assert "tokens and transcripts travel unencrypted" in result.stderr
    assert result.returncode == 1
    assert "cannot listen on 192.0.2.1:0" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_loopback_does_not_warn():
    proc, _url = _serve("--db", ":memory:", "--token", "T", env=_env())
    assert "plain HTTP" not in _stop(proc)


def test_serve_names_a_taken_address(ingress_server):
    result = _cli("serve", "--port", str(ingress_server.port), "--db", ":memory:", "--token", "T")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{ingress_server.port}: address already in use" in (
        result.stderr
    )


def test_several_workers_need_postgres():
    result = _cli("serve", "--workers", "2", "--db", ":memory:", "--token", "T", "--port", "0")
    assert result.returncode == 2
    assert "PostgreSQL" in result.stderr


def test_serve_with_workers_on_postgres_answers_and_stops_cleanly(pg_url: str):
    proc, url = _serve("--workers", "2", "--db", pg_url, "--token", "T", env=_env())
    try:
        auth = {"Authorization": "Bearer T"}
        last = None
        with httpx.Client() as client:
            for i in range(20):
                with httpx.Client() as fresh:  # new connections land on either worker
                    headers = {**auth, **({"Last-Uuid": last} if last else {})}
                    r = fresh.put(
                        url + "/v1/session_ingress/session/w",
                        json={"uuid": f"u{i}"},
                        headers=headers,
                    )
                    assert r.status_code in (200, 201)
                    last = f"u{i}"
            rows = client.get(url + "/v1/session_ingress/session/w", headers=auth).json()
            # each scrape is one worker's counts, and every sample says which worker
            for _ in range(6):
                with httpx.Client() as fresh:
                    text = fresh.get(url + "/metrics").text
                samples = [line for line in text.splitlines() if not line.startswith("#")]
                workers = {re.search(r'worker="(\d+)"', line).group(1) for line in samples}  # type: ignore[union-attr]
                assert len(workers) == 1
                assert workers <= {"0", "1"}
        assert [e["uuid"] for e in rows["loglines"]] == [f"u{i}" for i in range(20)]
    finally:
        _stop(proc)


def test_sessions_takes_its_token_from_options_or_environment_not_session_plugins(
    ingress_server, monkeypatch
):
    """A listing belongs to no session, so ``ingress_auth_token(session_id)``
    plugins have no say: ``sessions`` sends --token, --token-file or
    INGRESS_LOGGING_TOKEN, and without one the server's 401 is reported."""
    from click.testing import CliRunner

    from ingress_logging.cli._app import cli
    from ingress_logging.plugins import hookimpl, new_plugin_manager

    ingress_server.append_foreign("listed")
    asked: list[str] = []

    class PerSessionToken:
        @hookimpl
        def ingress_auth_token(self, session_id: str) -> str:
            asked.append(session_id)
            return ingress_server.token

    pm = new_plugin_manager()
    pm.register(PerSessionToken())
    monkeypatch.setattr("ingress_logging.plugins.get_plugin_manager", lambda: pm)
    for name in [k for k in os.environ if k.startswith("INGRESS_LOGGING_")]:
        monkeypatch.delenv(name)
    base = ["--base-url", ingress_server.base_url]
    refused = CliRunner().invoke(cli, [*base, "sessions"])
    assert refused.exit_code == 1
    assert "the server rejected the token (401)" in refused.output
    assert asked == []
    listed = CliRunner().invoke(cli, [*base, "--token", ingress_server.token, "sessions"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.split("\t")[0] == "listed"
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN", ingress_server.token)
    assert CliRunner().invoke(cli, [*base, "sessions"]).exit_code == 0
    assert asked == []
