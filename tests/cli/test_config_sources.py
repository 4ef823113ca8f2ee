"""Where the CLI's settings come from: URL template, token file, token plugin."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ingress_logging.server import IngressServer


def test_url_template_from_the_environment(
    server: IngressServer, run_cli, bare_env, transcript, jsonl, tmp_path: Path
) -> None:
    entries = transcript(4)
    path = jsonl(tmp_path / "t.jsonl", entries)
    env = bare_env(
        INGRESS_LOGGING_URL=server.base_url + "/v1/session_ingress/session/{session_id}",
        INGRESS_LOGGING_TOKEN=server.token,
    )

    shipped = run_cli("ship", str(path), env=env)
    shown = run_cli("show", "--json", entries[0]["sessionId"], env=env)
    doctor = run_cli("doctor", env=env)

    assert shipped.returncode == 0, shipped.stderr
    assert [orjson.loads(line) for line in shown.stdout.splitlines()] == entries
    assert "(from INGRESS_LOGGING_URL)" in doctor.stdout
    flag = run_cli("--base-url", server.base_url, "doctor", env=bare_env(INGRESS_LOGGING_TOKEN="x"))
    assert "(from --base-url)" in flag.stdout


def test_token_file_is_used_and_named_but_never_printed(
    server: IngressServer, run_cli, bare_env, transcript, jsonl, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(server.token + "\n", encoding="utf-8")
    env = bare_env(INGRESS_LOGGING_BASE_URL=server.base_url)
    entries = transcript(3)
    path = jsonl(tmp_path / "t.jsonl", entries)

    shipped = run_cli("--token-file", str(token_file), "ship", str(path), env=env)
    doctor = run_cli("--token-file", str(token_file), "doctor", env=env)

    assert shipped.returncode == 0, shipped.stderr
    assert server.entries(entries[0]["sessionId"]) == entries
    assert doctor.returncode == 0, doctor.stdout
    assert f"set, from --token-file / INGRESS_LOGGING_TOKEN_FILE ({token_file})" in doctor.stdout
    assert server.token not in doctor.stdout + doctor.stderr


def test_doctor_names_a_token_plugin(server: IngressServer, run_cli, bare_env) -> None:
    pytest.importorskip("ingress_logging_oauth")
    env = bare_env(
        INGRESS_LOGGING_BASE_URL=server.base_url,
        INGRESS_LOGGING_OAUTH_TOKEN=server.oauth_token,
        INGRESS_LOGGING_OAUTH_ORG_UUID=server.org_uuid,
    )

    result = run_cli("doctor", env=env)

    token_line = next(line for line in result.stdout.splitlines() if " token " in line)
    assert token_line.startswith("ok")
    assert "from plugin oauth" in token_line
    assert server.oauth_token not in result.stdout + result.stderr
    # The OAuth token reads, but an append with it is refused: ship would fail,
    # so doctor must not say "all checks passed".
    append_line = next(line for line in result.stdout.splitlines() if " append " in line)
    assert append_line.startswith("FAIL")
    assert "the token can read but not append (401)" in append_line
    assert result.returncode == 1
    assert "all checks passed" not in result.stdout


@pytest.mark.parametrize("command", ["show", "tail"])
def test_json_flag_follows_the_documented_variable_pattern(
    server: IngressServer, run_cli, cli_env, transcript, jsonl, tmp_path: Path, command: str
) -> None:
    """``INGRESS_LOGGING_<COMMAND>_<OPTION>`` (docs/cli.md) holds for --json too."""
    entries = transcript(3)
    shipped = run_cli("ship", str(jsonl(tmp_path / "t.jsonl", entries)))
    variable = f"INGRESS_LOGGING_{command.upper()}_JSON"

    shown = run_cli(command, entries[0]["sessionId"], env={**cli_env, variable: "1"})
    helped = run_cli(command, "--help")

    assert shipped.returncode == 0, shipped.stderr
    assert [orjson.loads(line) for line in shown.stdout.split("\n")[:-1]] == entries
    assert variable in helped.stdout


def test_no_url_anywhere_stops_with_the_variables_to_set(run_cli, bare_env) -> None:
    # A development token is never sent to a host the user did not name.
    result = run_cli("show", "s1", env=bare_env(INGRESS_LOGGING_TOKEN="dev-token"))
    assert result.returncode == 1
    assert "no session-ingress URL is configured" in result.stderr
    assert "INGRESS_LOGGING_URL" in result.stderr
    assert "INGRESS_LOGGING_BASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert "dev-token" not in result.stderr
