"""Plugin managers: process-wide singleton, register/unregister, blocklist, tracing."""

from __future__ import annotations

import threading

import pluggy
import pytest

from ingress_logging import plugins
from ingress_logging._defaults import DEFAULT_PLUGIN_NAME
from ingress_logging.errors import ConfigError
from ingress_logging.hookspecs import hookimpl
from ingress_logging.plugins import PluginHost, new_plugin_manager

SID = "s1"


class TokenPlugin:
    __name__ = "undo-token-plugin"

    def __init__(self, token: str) -> None:
        self.token = token

    @hookimpl
    def ingress_auth_token(self, session_id: str) -> str | None:
        return self.token

    @hookimpl
    def ingress_request_headers(self, session_id: str) -> dict[str, str]:
        return {"x-plugin": "yes"}


def test_process_wide_manager_is_created_once_even_under_contention() -> None:
    seen: list[pluggy.PluginManager] = []
    barrier = threading.Barrier(4)

    def grab() -> None:
        barrier.wait()
        seen.append(plugins.get_plugin_manager())

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(pm) for pm in seen}) == 1
    assert seen[0] is plugins.get_plugin_manager()
    assert seen[0].get_plugin(DEFAULT_PLUGIN_NAME) is not None


def test_register_and_unregister_in_the_process_wide_manager() -> None:
    plugin = TokenPlugin("registered-in-code")
    host = PluginHost()  # defaults to the process-wide manager
    name = plugins.register(plugin, name="undo-token")
    try:
        assert name == "undo-token"
        assert host.auth_token(SID) == "registered-in-code"
        with pytest.raises(ValueError):
            plugins.register(plugin, name="undo-token")
    finally:
        assert plugins.unregister(name="undo-token") is plugin
    assert host.auth_token(SID) is None
    assert plugins.unregister(name="undo-token") is None  # already gone: no error
    assert plugins.unregister(plugin) is None


def test_per_instance_managers_are_independent() -> None:
    pm_a = new_plugin_manager(load_entrypoints=False)
    pm_b = new_plugin_manager(load_entrypoints=False)
    pm_a.register(TokenPlugin("service-a"))
    assert PluginHost(pm_a).auth_token(SID) == "service-a"
    assert PluginHost(pm_b).auth_token(SID) is None
    assert PluginHost(pm_b).request_headers(SID) == {}


def test_blocked_names_are_not_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_DISABLE_PLUGINS", " undo-token , other")
    pm = new_plugin_manager(load_entrypoints=False)
    assert pm.is_blocked("undo-token")
    assert pm.is_blocked("other")
    assert pm.register(TokenPlugin("x"), name="undo-token") is None
    assert PluginHost(pm).auth_token(SID) is None


def test_register_of_a_blocked_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = plugins.get_plugin_manager()
    pm.set_blocked("undo-blocked")
    try:
        with pytest.raises(ConfigError, match="blocked"):
            plugins.register(TokenPlugin("x"), name="undo-blocked")
    finally:
        pm.unblock("undo-blocked")


def test_misspelt_hook_is_an_error_at_load_time() -> None:
    class Typo:
        @hookimpl
        def ingress_auth_tokn(self, session_id: str) -> str:
            return "x"

    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_register_refuses_a_misspelt_hook_and_leaves_nothing_behind() -> None:
    class Typo:
        @hookimpl
        def ingress_session_ur(self, session_id: str) -> str:
            return "https://typo.example"

    with pytest.raises(pluggy.PluginValidationError, match="ingress_session_ur"):
        plugins.register(Typo(), name="undo-typo")
    assert plugins.get_plugin_manager().get_plugin("undo-typo") is None


def test_tracing_prints_calls_but_never_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_TRACE_PLUGINS", "1")
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(TokenPlugin("traced-secret-token"), name="undo-traced")
    host = PluginHost(pm)
    assert host.auth_token(SID) == "traced-secret-token"
    assert host.request_headers(SID) == {"x-plugin": "yes"}
    err = capsys.readouterr().err
    assert "ingress_auth_token" in err
    assert "undo-traced" in err
    assert "ingress_request_headers" in err
    assert "x-plugin" in err
    assert "traced-secret-token" not in err


class TrylastTokenPlugin:
    @hookimpl(trylast=True)
    def ingress_auth_token(self, session_id: str) -> str | None:
        return "from-trylast-plugin"


def test_the_default_plugin_stays_last_after_a_later_trylast_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pluggy asks the newest trylast impl last; the default must still come after it."""
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN", "from-the-environment")
    pm = new_plugin_manager(load_entrypoints=False)
    assert pm.hook.ingress_auth_token(session_id=SID) == "from-the-environment"

    pm.register(TrylastTokenPlugin())

    assert pm.hook.ingress_auth_token(session_id=SID) == "from-trylast-plugin"
    impls = pm.hook.ingress_auth_token.get_hookimpls()
    assert impls[0].plugin_name == DEFAULT_PLUGIN_NAME  # called last
    assert pm.get_plugin(DEFAULT_PLUGIN_NAME) is not None


class InstanceTokenPlugin:
    @hookimpl
    def ingress_auth_token(self, session_id: str) -> str | None:
        return "instance-token"


def test_a_list_of_plugin_objects_gets_its_own_manager() -> None:
    """plugins=[obj] registers plugins for one handler or client only."""
    mine = InstanceTokenPlugin()
    host = PluginHost([mine])
    assert host.auth_token(SID) == "instance-token"
    assert host.pm is not plugins.get_plugin_manager()
    assert host.pm.is_registered(mine)
    assert host.pm.get_plugin(DEFAULT_PLUGIN_NAME) is not None
    assert PluginHost().auth_token(SID) is None  # the process-wide manager is untouched


def test_plugins_of_another_type_are_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="PluginManager or a list"):
        PluginHost(object())  # type: ignore[arg-type]


def test_the_marker_is_importable_from_each_documented_place() -> None:
    import ingress_logging
    from ingress_logging import hookspecs

    assert plugins.hookimpl is hookspecs.hookimpl is ingress_logging.hookimpl
    assert plugins.hookimpl.project_name == "ingress_logging"
