"""The OAuth plugin: inert by default, env and file sources, and accepted by the real server."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import ingress_logging_oauth
import pytest
from ingress_logging_oauth._credentials import file_cache

from ingress_logging.errors import ConfigError
from ingress_logging.plugins import PluginHost, new_plugin_manager
from ingress_logging.server import IngressServer, run_server

SID = "oauth_session_1"
ORG = "5f0c2f7e-3c1a-4c55-9a8e-7d2b1e0f4a11"


@pytest.fixture
def host() -> PluginHost:
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(ingress_logging_oauth, name="oauth")
    return PluginHost(pm, token="ingress-token", diagnostics=lambda *a: None)


@pytest.fixture
def server() -> Iterator[IngressServer]:
    with run_server(token="ingress-token", oauth_token="oauth-access", org_uuid=ORG) as srv:
        yield srv


def test_inert_unless_configured(host: PluginHost) -> None:
    assert host.auth_token(SID) == "ingress-token"
    assert host.request_headers(SID) == {}


def test_env_supplies_token_and_headers(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_TOKEN", "oauth-access")
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_ORG_UUID", ORG.upper())
    assert host.auth_token(SID) == "oauth-access"
    assert host.request_headers(SID) == {
        "anthropic-version": "2023-06-01",
        "x-organization-uuid": ORG,  # normalised
    }
    monkeypatch.setenv("INGRESS_LOGGING_ANTHROPIC_VERSION", "2099-01-01")
    assert host.request_headers(SID)["anthropic-version"] == "2099-01-01"


def test_file_is_reread_when_the_host_refreshes_it(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "oauth.json"
    path.write_text(json.dumps({"access_token": "first", "organization_uuid": ORG}))
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_FILE", str(path))
    reads = file_cache.reads
    assert host.auth_token(SID) == "first"
    assert host.request_headers(SID)["x-organization-uuid"] == ORG
    assert file_cache.reads == reads + 1  # unchanged file: not read again

    refreshed = tmp_path / "oauth.json.new"
    refreshed.write_text(json.dumps({"access_token": "second", "organization_uuid": ORG}))
    os.replace(refreshed, path)
    assert host.auth_token(SID) == "second"
    assert file_cache.reads == reads + 2

    # Environment wins over the file, field by field.
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_TOKEN", "from-env")
    assert host.auth_token(SID) == "from-env"
    assert host.request_headers(SID)["x-organization-uuid"] == ORG


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all secret-xyz", "JSON object"),
        (json.dumps(["secret-xyz"]), "JSON object"),
        (json.dumps({"access_token": 12}), "must be strings"),
        (json.dumps({"access_token": "secret-xyz", "organization_uuid": "nope"}), "not a UUID"),
    ],
)
def test_bad_file_is_a_clear_error_without_its_content(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "oauth.json"
    path.write_text(content)
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_FILE", str(path))
    with pytest.raises(ConfigError, match=message) as info:
        host.request_headers(SID)
    assert "secret-xyz" not in str(info.value)


def test_missing_file_is_a_clear_error(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_FILE", "/nonexistent/oauth.json")
    with pytest.raises(ConfigError, match="INGRESS_LOGGING_OAUTH_FILE"):
        host.auth_token(SID)


def _oauth_request(host: PluginHost, url: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {host.auth_token(SID)}", **host.request_headers(SID)}
    return httpx.get(url, headers=headers, timeout=5)


def test_the_real_server_accepts_the_oauth_read_and_teleport_events(
    server: IngressServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = new_plugin_manager(load_entrypoints=False)
    pm.register(ingress_logging_oauth, name="oauth")
    host = PluginHost(pm, base_api_url=server.base_url, diagnostics=lambda *a: None)
    teleport = f"{server.base_url}/v1/code/sessions/{SID}/teleport-events"

    # Without the plugin configured the OAuth endpoints refuse us.
    monkeypatch.setenv("INGRESS_LOGGING_TOKEN", "ingress-token")
    assert _oauth_request(host, teleport).status_code in (401, 403)

    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_TOKEN", server.oauth_token)
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_ORG_UUID", ORG)
    read = _oauth_request(host, host.session_url(SID))
    assert read.status_code == 404  # authorised; the session has no logs yet
    assert _oauth_request(host, teleport).status_code == 404

    # Once something is stored, the OAuth read returns it.
    stored = {"type": "user", "uuid": str(uuid.uuid4()), "message": "hello"}
    put = httpx.put(
        server.session_url(SID),
        json=stored,
        headers={"Authorization": "Bearer ingress-token"},
        timeout=5,
    )
    assert put.status_code in (200, 201)
    read = _oauth_request(host, host.session_url(SID))
    assert read.status_code == 200
    assert [e["uuid"] for e in read.json()["loglines"]] == [stored["uuid"]]

    # The wrong organization is refused: the header really is what the server checks.
    monkeypatch.setenv("INGRESS_LOGGING_OAUTH_ORG_UUID", str(uuid.uuid4()))
    assert _oauth_request(host, host.session_url(SID)).status_code == 403
