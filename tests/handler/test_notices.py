"""Failures are never silent: the README's setup, in a fresh interpreter, against the real server.

Each test runs the README's few lines (a handler on the root logger, nothing
routed for the library's own diagnostics) in a subprocess, so what reaches
stderr is exactly what a new user would see: one plain sentence the first
time each kind of failure happens, one summary line at exit, never the
token, never a traceback, and nothing at all in a healthy run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from ingress_logging.server import IngressServer

APP = textwrap.dedent(
    """
    import logging, os
    from ingress_logging import IngressHandler

    options = {}
    if os.environ.get("SID"):
        options["session_id"] = os.environ["SID"]
    handler = IngressHandler(url=os.environ["URL"], close_timeout=1.0, **options)
    logging.getLogger().addHandler(handler)
    {route}
    for i in range(5):
        logging.getLogger("app").warning("hello %d", i)
    handler.flush()
    """
)


def _run(
    url: str,
    *,
    token: str | None,
    sid: str | None = "s1",
    route: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("INGRESS_LOGGING_", "OTEL_"))
    }
    environ["URL"] = url
    environ["SID"] = sid or ""
    environ["INGRESS_LOGGING_DISABLE_PLUGINS"] = "redact,oauth,otel-metrics"
    if token is not None:
        environ["INGRESS_LOGGING_TOKEN"] = token
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", APP.replace("{route}", route)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _template(base: str) -> str:
    return base + "/v1/session_ingress/session/{session_id}"


def _notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ingress_logging: ")]


def _assert_clean(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for secret in secrets:
        assert secret not in result.stderr


def test_a_healthy_run_prints_nothing(ingress_server: IngressServer) -> None:
    result = _run(_template(ingress_server.base_url), token=ingress_server.token)
    _assert_clean(result)
    assert result.stderr == ""
    assert len(ingress_server.entries("s1")) == 5


def test_a_wrong_token_is_said_once_and_summed_at_exit(ingress_server: IngressServer) -> None:
    result = _run(_template(ingress_server.base_url), token="wrong-token-value")
    _assert_clean(result, "wrong-token-value")
    lines = _notices(result.stderr)
    first = [line for line in lines if "rejected the token (401)" in line and "so far" in line]
    assert len(first) == 1, result.stderr
    assert f"at {ingress_server.base_url}" in first[0]
    assert "INGRESS_LOGGING_TOKEN" in first[0]
    assert lines[-1] == (
        "ingress_logging: 5 entries not delivered in this run: "
        "the server rejected the token (401): 5."
    )
    assert len(lines) == 2, result.stderr


def test_no_token_is_said_once(ingress_server: IngressServer) -> None:
    result = _run(_template(ingress_server.base_url), token=None)
    _assert_clean(result)
    lines = _notices(result.stderr)
    assert sum("no token is configured" in line for line in lines) == 2  # first line + summary
    assert lines[0].endswith("Set INGRESS_LOGGING_TOKEN (or INGRESS_LOGGING_TOKEN_FILE) or token=.")
    assert lines[-1].endswith("no token is configured: 5.")


def test_a_server_that_is_down_is_named_with_the_reason() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _run(_template(f"http://127.0.0.1:{port}"), token="tok-down-1234")
    _assert_clean(result, "tok-down-1234")
    lines = _notices(result.stderr)
    assert lines[0].startswith(
        f"ingress_logging: cannot connect to http://127.0.0.1:{port} (connection refused)"
    ), result.stderr
    assert sum("cannot connect" in line for line in lines) == 1  # not once per attempt
    assert lines[-1] == (
        "ingress_logging: 5 entries not delivered in this run: "
        "still queued when delivery stopped: 5."
    )


def test_plain_http_to_a_remote_host_is_refused_in_words() -> None:
    result = _run(_template("http://ingress.example.invalid"), token="tok-remote-1234")
    _assert_clean(result, "tok-remote-1234")
    lines = _notices(result.stderr)
    assert lines[0].startswith(
        "ingress_logging: refusing to send the token over plain http to ingress.example.invalid"
    ), result.stderr
    assert "allow_insecure_http=True" in lines[0]
    assert len(lines) == 2


def test_a_redact_pattern_that_does_not_compile_is_named(ingress_server: IngressServer) -> None:
    result = _run(
        _template(ingress_server.base_url),
        token=ingress_server.token,
        env={
            "INGRESS_LOGGING_DISABLE_PLUGINS": "oauth,otel-metrics",
            "INGRESS_LOGGING_REDACT_PATTERNS": '["acct-(\\\\d"]',
        },
    )
    _assert_clean(result)
    lines = _notices(result.stderr)
    assert "the plugin redact failed on an entry" in lines[0], result.stderr
    assert "INGRESS_LOGGING_REDACT_PATTERNS" in lines[0]
    assert "never shipped unprepared" in lines[0]
    assert lines[-1].endswith("dropped by a plugin: 5.")
    assert ingress_server.entries("s1") == []


def test_no_default_session_id_is_said_once(ingress_server: IngressServer) -> None:
    result = _run(_template(ingress_server.base_url), token=ingress_server.token, sid=None)
    _assert_clean(result)
    lines = _notices(result.stderr)
    assert lines[0].startswith("ingress_logging: a record named no session id, so it was dropped")
    assert "session_id=" in lines[0]
    assert lines[-1].endswith("no session id (none given and no default): 5.")
    assert len(lines) == 2


@pytest.mark.parametrize(
    "route",
    [
        # a handler on the library's logger: the app decided where diagnostics go
        "import sys; h = logging.StreamHandler(sys.stdout); "
        "logging.getLogger('ingress_logging').addHandler(h)",
        # a console handler on the root logger shows them too
        "import sys; logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))",
    ],
)
def test_routed_diagnostics_are_not_repeated_on_stderr(
    ingress_server: IngressServer, route: str
) -> None:
    result = _run(_template(ingress_server.base_url), token="wrong-token-value", route=route)
    _assert_clean(result, "wrong-token-value")
    assert result.stderr == ""
    # ... and what the handler shows is a sentence with the event's numbers
    assert "ingress_logging: 1 entry not delivered: the server rejected the token (401)" in (
        result.stdout
    )
    assert "5 entries not delivered in this run" in result.stdout
    assert "wrong-token-value" not in result.stdout


def test_a_diagnostics_sink_takes_them_instead(ingress_server: IngressServer) -> None:
    code = APP.replace(
        'handler = IngressHandler(url=os.environ["URL"], close_timeout=1.0, **options)',
        "events = []\n"
        'handler = IngressHandler(url=os.environ["URL"], close_timeout=1.0, '
        "diagnostics=lambda *e: events.append(e), **options)",
    ).replace("{route}", "")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_LOGGING_")}
    environ.update(URL=_template(ingress_server.base_url), SID="")
    result = subprocess.run(
        [sys.executable, "-c", code + "\nassert events, events\n"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_at_most_twenty_lines_and_each_kind_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingress_logging import _notices

    monkeypatch.setattr(_notices, "logger_routed", lambda: False)  # pytest's own handlers
    notices = _notices.Notices()
    for _ in range(3):
        for status in range(400, 440):
            notices.observe(
                "delivery_failed", {"count": 1, "reason": "permanent", "status": status}
            )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == _notices.MAX_LINES == 20
    assert len(set(lines)) == 20
    assert lines[0] == (
        "ingress_logging: the server refused entries (400); 1 entry not delivered so far."
    )
    assert notices.summary() == (
        "ingress_logging: 120 entries not delivered in this run: refused by the server: 120."
    )
