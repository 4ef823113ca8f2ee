"""Fixtures for the CLI tests: the real command in a subprocess, a real server.

Transcripts are generated from the shapes of agent transcripts (user and
assistant messages with content blocks, a side chain, a compaction boundary
and its summary, summaries and snapshots without a uuid) with fresh ids and
made-up text, so each test has its own data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingress_logging.server import IngressServer

CLI_TIMEOUT = 60.0


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ingress-logging")
    if script.exists():
        return [str(script)]
    found = shutil.which("ingress-logging")
    return [found] if found else [sys.executable, "-m", "ingress_logging.cli"]


COMMAND = _command()


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any INGRESS_LOGGING_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    env.update(extra)
    return env


@pytest.fixture
def bare_env() -> Callable[..., dict[str, str]]:
    """``clean_env``: build an environment with no INGRESS_LOGGING_* inherited."""
    return clean_env


@pytest.fixture
def server(ingress_server: IngressServer) -> IngressServer:
    return ingress_server


@pytest.fixture
def cli_env(server: IngressServer) -> dict[str, str]:
    """Environment that points the command at ``server`` with fast retries."""
    return clean_env(
        INGRESS_LOGGING_BASE_URL=server.base_url,
        INGRESS_LOGGING_TOKEN=server.token,
        INGRESS_LOGGING_BASE_DELAY="0.001",
        INGRESS_LOGGING_MAX_ATTEMPTS="3",
    )


@pytest.fixture
def cli_command() -> list[str]:
    """The argv prefix that runs the command (the installed console script)."""
    return list(COMMAND)


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(cli_env: dict[str, str], tmp_path: Path) -> RunCli:
    """Run ``ingress-logging ARGS...``; returns the finished process (text output)."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, *args],
            env=cli_env if env is None else env,
            input=input,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            cwd=tmp_path,
            check=False,
        )

    return run


def _ts(i: int) -> str:
    return f"2026-01-02T03:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"


def make_transcript(n: int, session_id: str | None = None) -> list[dict[str, Any]]:
    """``n`` real-shaped transcript entries for one session, chained by parentUuid."""
    sid = session_id or f"sess-{uuid.uuid4()}"
    common = {"isSidechain": False, "userType": "external", "cwd": "/work/proj", "version": "2.1.0"}
    entries: list[dict[str, Any]] = []
    parent: str | None = None
    for i in range(n):
        me = str(uuid.uuid4())
        kind = i % 7
        base: dict[str, Any] = {"parentUuid": parent, **common, "sessionId": sid}
        if kind == 0:
            entry = {
                **base,
                "type": "user",
                "message": {"role": "user", "content": f"please do step {i}"},
                "uuid": me,
                "timestamp": _ts(i),
            }
        elif kind == 1:
            entry = {
                **base,
                "type": "assistant",
                "uuid": me,
                "timestamp": _ts(i),
                "message": {
                    "id": f"msg_{i:04d}",
                    "role": "assistant",
                    "model": "model-x",
                    "content": [
                        {"type": "text", "text": f'Working on step {i}: \u00e9\u2713 "quoted"'},
                        {"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {}},
                    ],
                    "usage": {"input_tokens": i, "output_tokens": 2 * i, "ratio": 0.1 + i},
                    "stop_sequence": None,
                },
            }
        elif kind == 2:
            entry = {
                **base,
                "type": "user",
                "uuid": me,
                "timestamp": _ts(i),
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": f"toolu_{i - 1}",
                            "content": [{"type": "text", "text": f"output line {i}\nsecond"}],
                            "is_error": False,
                        }
                    ],
                },
            }
        elif kind == 3:
            # A side chain starts a new thread: no parent, not the main chain.
            entry = {
                **base,
                "parentUuid": None,
                "isSidechain": True,
                "type": "assistant",
                "uuid": me,
                "timestamp": _ts(i),
                "message": {"role": "assistant", "content": [{"type": "text", "text": "sub"}]},
            }
        elif kind == 4:
            entry = {
                **base,
                "type": "system",
                "subtype": "compact_boundary",
                "content": "Conversation compacted",
                "uuid": me,
                "timestamp": _ts(i),
                "logicalParentUuid": parent,
                "compactMetadata": {"trigger": "auto", "preTokens": 1000 + i},
                "level": "info",
            }
        elif kind == 5:
            entry = {"type": "summary", "summary": f"Summary number {i}", "leafUuid": parent}
            me = parent or me
        else:
            entry = {
                "type": "file-history-snapshot",
                "messageId": str(uuid.uuid4()),
                "snapshot": {"trackedFileBackups": {}, "timestamp": _ts(i)},
                "isSnapshotUpdate": False,
            }
            me = parent or me
        entries.append(entry)
        parent = me
    return entries


def write_jsonl(path: Path, entries: list[dict[str, Any]]) -> Path:
    """Write entries one per line (with spaces, as some writers do)."""
    with open(path, "wb") as f:
        for entry in entries:
            f.write(orjson.dumps(entry).replace(b'","', b'", "') + b"\n")
    return path


@pytest.fixture
def transcript() -> Callable[..., list[dict[str, Any]]]:
    return make_transcript


@pytest.fixture
def jsonl() -> Callable[..., Path]:
    return write_jsonl


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Long-running commands started by a test; all are killed at teardown."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
