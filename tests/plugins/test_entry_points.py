"""Discovery through real installed distributions (the ``ingress_logging`` entry-point group).

The three first-party plugins in ``plugins/`` are installed editable into the
dev environment by ``scripts/bootstrap``; these tests go through
``importlib.metadata`` exactly as a user's installed plugin would.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from ingress_logging.plugins import PluginHost, get_plugin_manager, new_plugin_manager

FIRST_PARTY = {
    "oauth": ("ingress_logging_oauth", "ingress-logging-oauth"),
    "redact": ("ingress_logging_redact", "ingress-logging-redact"),
    "otel-metrics": ("ingress_logging_otel_metrics", "ingress-logging-otel-metrics"),
}


def test_first_party_plugins_are_installed_as_entry_points() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="ingress_logging")}
    for name, (module, _dist) in FIRST_PARTY.items():
        assert found.get(name) == module


def test_the_process_wide_manager_loads_them() -> None:
    pm = get_plugin_manager()
    for name, (module, _dist) in FIRST_PARTY.items():
        plugin = pm.get_plugin(name)
        assert plugin is not None, name
        assert plugin.__name__ == module
    dists = {d.project_name for _plugin, d in pm.list_plugin_distinfo()}
    assert {dist for _m, dist in FIRST_PARTY.values()} <= dists
    # And they are wired to their hooks.
    hooked = {impl.plugin_name for impl in pm.hook.ingress_prepare_entry.get_hookimpls()}
    assert "redact" in hooked
    hooked = {impl.plugin_name for impl in pm.hook.ingress_diagnostic.get_hookimpls()}
    assert "otel-metrics" in hooked


def test_installed_plugins_are_inert_until_configured() -> None:
    host = PluginHost(diagnostics=lambda *a: None)
    entry = {"type": "log", "message": "mail me at a@b.example, card 4111 1111 1111 1111"}
    assert host.prepare_entry(dict(entry), None) == entry
    assert host.auth_token("s1") is None
    assert host.request_headers("s1") == {}


def test_an_installed_plugin_takes_effect_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_BUILTINS", "emails")
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_TOKEN", "oauth-access")
    host = PluginHost(token="ctor-token", diagnostics=lambda *a: None)
    out = host.prepare_entry({"type": "log", "message": "mail a@b.example"}, None)
    assert out == {"type": "log", "message": "mail [REDACTED]"}
    assert host.auth_token("s1") == "oauth-access"  # a plugin beats the constructor token
    assert host.request_headers("s1") == {"anthropic-version": "2023-06-01"}


def test_blocklist_keeps_an_installed_plugin_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_DISABLE_PLUGINS", "redact,oauth")
    pm = new_plugin_manager()
    assert pm.get_plugin("redact") is None
    assert pm.get_plugin("oauth") is None
    assert pm.get_plugin("otel-metrics") is not None
    monkeypatch.setenv("INGRESS_LOGGING_REDACT_BUILTINS", "emails")
    out = PluginHost(pm, diagnostics=lambda *a: None).prepare_entry({"m": "a@b.example"}, None)
    assert out == {"m": "a@b.example"}
