"""PluginHost: precedence of plugins, constructor settings, environment and defaults."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pluggy
import pytest

from ingress_logging import _defaults
from ingress_logging.errors import ConfigError, InvalidSessionIdError
from ingress_logging.hookspecs import hookimpl
from ingress_logging.plugins import PluginHost

SID = "session_1"


class TokenPlugin:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self.calls: list[str] = []

    @hookimpl
    def ingress_auth_token(self, session_id: str) -> str | None:
        self.calls.append(session_id)
        return self.token


class UrlPlugin:
    def __init__(self, url: str | None) -> None:
        self.url = url

    @hookimpl
    def ingress_session_url(self, session_id: str) -> str | None:
        return None if self.url is None else f"{self.url}/{session_id}"


# --- token -----------------------------------------------------------------


def test_first_result_wins_newest_registered_first(pm: pluggy.PluginManager) -> None:
    older, newer = TokenPlugin("older"), TokenPlugin("newer")
    pm.register(older)
    pm.register(newer)
    host = PluginHost(pm)
    assert host.auth_token(SID) == "newer"
    # firstresult: once an answer is found, the rest are not asked.
    assert newer.calls == [SID]
    assert older.calls == []


def test_a_plugin_that_passes_lets_the_next_answer(pm: pluggy.PluginManager) -> None:
    pm.register(TokenPlugin("older"))
    passing = TokenPlugin(None)
    pm.register(passing)
    assert PluginHost(pm).auth_token(SID) == "older"
    assert passing.calls == [SID]


def test_registered_plugin_wins_over_the_default_plugin(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN", "from-env")
    # Through pluggy directly: the default plugin answers only when nobody else does.
    assert pm.hook.ingress_auth_token(session_id=SID) == "from-env"
    plugin = TokenPlugin("from-plugin")
    pm.register(plugin)
    assert pm.hook.ingress_auth_token(session_id=SID) == "from-plugin"
    assert PluginHost(pm).auth_token(SID) == "from-plugin"
    # Even a plugin registered *before* the default plugin is asked before it.
    fresh = pluggy.PluginManager("ingress_logging")
    from ingress_logging import hookspecs

    fresh.add_hookspecs(hookspecs)
    early = TokenPlugin("early")
    fresh.register(early)
    fresh.register(_defaults, name=_defaults.DEFAULT_PLUGIN_NAME)
    assert fresh.hook.ingress_auth_token(session_id=SID) == "early"


def test_token_precedence_plugin_constructor_env_file(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    host = PluginHost(pm)
    assert host.auth_token(SID) is None
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN_FILE", str(token_file))
    assert host.auth_token(SID) == "from-file"  # env read at call time, stripped
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN", "from-env")
    assert host.auth_token(SID) == "from-env"
    assert PluginHost(pm, token="from-ctor").auth_token(SID) == "from-ctor"
    pm.register(TokenPlugin("from-plugin"))
    assert PluginHost(pm, token="from-ctor").auth_token(SID) == "from-plugin"


def test_a_plugin_token_that_is_not_a_str_is_a_clear_error(pm: pluggy.PluginManager) -> None:
    class BytesToken:
        @hookimpl
        def ingress_auth_token(self, session_id: str) -> bytes:
            return b"bytes-secret"

    pm.register(BytesToken())
    with pytest.raises(ConfigError, match="bytes") as info:
        PluginHost(pm).auth_token(SID)
    assert "bytes-secret" not in str(info.value)


def test_callable_constructor_token_is_called_per_request(pm: pluggy.PluginManager) -> None:
    tokens = iter(["t1", "t2", None])
    host = PluginHost(pm, token=lambda: next(tokens))
    assert [host.auth_token(SID), host.auth_token(SID), host.auth_token(SID)] == ["t1", "t2", None]


def test_empty_env_token_counts_as_unset(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN", "  ")
    token_file = tmp_path / "token"
    token_file.write_text("file-token")
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN_FILE", str(token_file))
    assert PluginHost(pm).auth_token(SID) == "file-token"


def test_token_file_is_reread_only_when_it_changes(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first")
    os.utime(token_file, ns=(1_000_000_000, 1_000_000_000))
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN_FILE", str(token_file))
    host = PluginHost(pm)
    reads = _defaults.token_files.reads
    assert host.auth_token(SID) == "first"
    assert host.auth_token(SID) == "first"
    assert _defaults.token_files.reads == reads + 1  # the second call was a stat only

    # Rewritten in place with the same length: the mtime tells.
    token_file.write_text("secnd")
    os.utime(token_file, ns=(2_000_000_000, 2_000_000_000))
    assert host.auth_token(SID) == "secnd"

    # Rotated by atomic rename (new inode), as secret managers do.
    rotated = tmp_path / "token.new"
    rotated.write_text("third")
    os.replace(rotated, token_file)
    assert host.auth_token(SID) == "third"
    assert _defaults.token_files.reads == reads + 3

    # Removed: no token, and no stale cached one.
    token_file.unlink()
    assert host.auth_token(SID) is None


def test_a_token_file_caught_mid_rewrite_keeps_the_previous_token(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("current")
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN_FILE", str(token_file))
    host = PluginHost(pm)
    assert host.auth_token(SID) == "current"
    token_file.write_text("")  # a writer truncated it and has not written yet
    assert host.auth_token(SID) == "current"
    token_file.write_text("next")
    assert host.auth_token(SID) == "next"
    # Empty for longer than a moment: deliberately no token.
    token_file.write_text("")
    old = 1_000_000_000
    os.utime(token_file, ns=(old, old))
    assert host.auth_token(SID) is None


def test_token_file_rotation_under_concurrent_readers(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("token-0")
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN_FILE", str(token_file))
    host = PluginHost(pm)
    written = {"token-0"}
    seen: list[str | None] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(host.auth_token(SID))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 50):
            new = tmp_path / f"token.{i}"
            new.write_text(f"token-{i}")
            written.add(f"token-{i}")
            os.replace(new, token_file)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen
    assert set(seen) <= written  # never None, never a torn value
    assert host.auth_token(SID) == "token-49"


def test_invalid_session_id_is_refused_before_any_plugin_runs(pm: pluggy.PluginManager) -> None:
    plugin = TokenPlugin("t")
    pm.register(plugin)
    host = PluginHost(pm)
    for bad in ["../x", "a/b", "", "x\r\ny"]:
        with pytest.raises(InvalidSessionIdError):
            host.auth_token(bad)
        with pytest.raises(InvalidSessionIdError):
            host.session_url(bad)
        with pytest.raises(InvalidSessionIdError):
            host.request_headers(bad)
    assert plugin.calls == []


def test_repr_never_shows_the_token(pm: pluggy.PluginManager) -> None:
    host = PluginHost(pm, token="very-secret-token")
    assert "very-secret-token" not in repr(host)
    assert "<set>" in repr(host)


def test_bad_constructor_arguments_are_clear_errors(pm: pluggy.PluginManager) -> None:
    with pytest.raises(ConfigError, match="session_id"):
        PluginHost(pm, url_template="https://x.example/no-placeholder")
    with pytest.raises(ConfigError, match="token must be"):
        PluginHost(pm, token=42)  # type: ignore[arg-type]


# --- url ---------------------------------------------------------------------


def test_url_precedence(pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    # No built-in host: nothing configured is an error that says what to set.
    monkeypatch.delenv("INGRESS_LOGGING_URL", raising=False)
    monkeypatch.delenv("INGRESS_LOGGING_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"INGRESS_LOGGING_URL.*INGRESS_LOGGING_BASE_URL"):
        PluginHost(pm).session_url("s:1")
    with pytest.raises(ConfigError, match="INGRESS_LOGGING_URL"):
        PluginHost(pm).require_url()
    monkeypatch.setenv("INGRESS_LOGGING_BASE_URL", "http://127.0.0.1:9/")
    assert PluginHost(pm).session_url(SID) == f"http://127.0.0.1:9/v1/session_ingress/session/{SID}"
    monkeypatch.setenv("INGRESS_LOGGING_URL", "https://env.example/s/{session_id}/log")
    assert PluginHost(pm).session_url(SID) == f"https://env.example/s/{SID}/log"
    # Explicit constructor settings beat the environment.
    host = PluginHost(pm, base_api_url="https://ctor.example")
    assert host.session_url(SID) == f"https://ctor.example/v1/session_ingress/session/{SID}"
    host = PluginHost(
        pm, base_api_url="https://ctor.example", url_template="https://tpl.example/{session_id}"
    )
    assert host.session_url("s:1") == "https://tpl.example/s%3A1"
    # A plugin beats them all.
    pm.register(UrlPlugin("https://plugin.example"))
    assert host.session_url(SID) == f"https://plugin.example/{SID}"


def test_a_plugin_url_that_is_not_http_is_refused(pm: pluggy.PluginManager) -> None:
    pm.register(UrlPlugin("file:///etc"))
    with pytest.raises(ConfigError, match="http"):
        PluginHost(pm).session_url(SID)


def test_bad_env_url_template_is_a_clear_error(
    pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_URL", "https://env.example/{session_id}/{other}")
    with pytest.raises(ConfigError, match="placeholder"):
        PluginHost(pm).session_url(SID)


# --- headers -----------------------------------------------------------------


class HeaderPlugin:
    def __init__(self, headers: dict[str, str] | None) -> None:
        self.headers = headers

    @hookimpl
    def ingress_request_headers(self, session_id: str) -> dict[str, str] | None:
        return self.headers


def test_headers_are_merged_and_the_first_called_plugin_wins(pm: pluggy.PluginManager) -> None:
    pm.register(HeaderPlugin({"X-Organization-Uuid": "older", "x-a": "1"}))
    pm.register(HeaderPlugin(None))
    pm.register(HeaderPlugin({"x-organization-uuid": "newer", "x-b": "2"}))
    assert PluginHost(pm).request_headers(SID) == {
        "x-organization-uuid": "newer",
        "x-b": "2",
        "x-a": "1",
    }


def test_authorization_never_comes_from_the_headers_hook(pm: pluggy.PluginManager) -> None:
    pm.register(HeaderPlugin({"Authorization": "Bearer sneaky", "x-ok": "1"}))
    assert PluginHost(pm).request_headers(SID) == {"x-ok": "1"}


def test_header_injection_is_refused(pm: pluggy.PluginManager) -> None:
    pm.register(HeaderPlugin({"x-evil": "a\r\nHost: elsewhere"}))
    with pytest.raises(ConfigError, match="CR, LF"):
        PluginHost(pm).request_headers(SID)
