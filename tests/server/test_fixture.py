"""The pytest plugin: fixtures are fresh, isolated and cleaned up."""

from __future__ import annotations

import time

import pytest

from ingress_logging.server import IngressServer


def test_fixture_server_starts_empty_with_faults_off(
    ingress_server: IngressServer, ingress_server_db: str
):
    assert ingress_server.running
    assert ingress_server.db == ingress_server_db
    assert ingress_server.requests == []
    assert ingress_server.faults.pending() == 0
    assert ingress_server.faults.latency == 0
    assert ingress_server.store.count_events() == 0


def test_factory_servers_are_independent_and_closed_after_the_test(ingress_server_factory):
    a = ingress_server_factory(token="A", db=":memory:")
    b = ingress_server_factory(token="B", max_body_bytes=10, db=":memory:")
    assert a.port != b.port
    a.append_foreign("s", {"uuid": "x"})
    assert b.entries("s") == []
    assert b.max_body_bytes == 10


def test_tokens_differ_per_server_and_stay_out_of_repr(ingress_server_factory):
    a, b = ingress_server_factory(), ingress_server_factory()
    assert a.token != b.token
    for srv in (a, b):
        text = repr(srv)
        assert srv.token not in text
        assert srv.oauth_token not in text


def test_wait_for_requests_returns_once_enough_arrived(ingress_server, client):
    client.get(ingress_server.session_url("s"))
    assert len(ingress_server.wait_for_requests(1, timeout=1.0)) == 1
    with pytest.raises(TimeoutError):
        ingress_server.wait_for_requests(2, timeout=0.01)


def test_request_times_are_monotonic_clock_readings(ingress_server, client):
    before = time.monotonic()
    client.get(ingress_server.session_url("s"))
    after = time.monotonic()
    (record,) = ingress_server.requests
    assert before <= record.t <= after


def test_close_leaves_no_server_threads_behind(ingress_server_factory, client):
    import threading

    before = set(threading.enumerate())
    srv = ingress_server_factory()
    client.get(srv.session_url("s"))  # leaves an idle keep-alive connection
    assert srv.open_connections() == 1
    srv.close()
    assert srv.open_connections() == 0
    leftover = set(threading.enumerate()) - before
    assert not leftover, [t.name for t in leftover]


def test_public_names_of_the_server_package():
    import ingress_logging.server as server
    import ingress_logging.testing as testing

    assert set(server.__all__) == {
        "DEFAULT_MAX_BODY_BYTES",
        "FaultDecision",
        "FaultInjector",
        "IngressServer",
        "RequestRecord",
        "ScriptStep",
        "run_server",
        "serve",
    }
    assert all(hasattr(server, name) for name in server.__all__)
    assert set(testing.__all__) == {
        "delay_proxy_factory",
        "ingress_server",
        "ingress_server_db",
        "ingress_server_factory",
        "reorder_proxy_factory",
    }


def test_plugin_is_registered_and_serves_a_users_own_test_suite(tmp_path):
    """A project that only installs the package gets the fixture (pytest11 entry point)."""
    import subprocess
    import sys
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="pytest11") if e.name == "ingress_logging"]
    assert ep.value == "ingress_logging.testing"
    (tmp_path / "test_user_app.py").write_text(
        "import httpx\n"
        "def test_app(ingress_server):\n"
        "    h = {'Authorization': 'Bearer ' + ingress_server.token}\n"
        "    r = httpx.put(ingress_server.session_url('u'), json={'uuid': 'a'}, headers=h)\n"
        "    assert r.status_code == 201\n"
        "    assert ingress_server.entries('u') == [{'uuid': 'a'}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_serves_on_the_ipv6_loopback(ingress_server_factory, client):
    srv = ingress_server_factory(host="::1")
    assert srv.base_url == f"http://[::1]:{srv.port}"
    auth = {"Authorization": f"Bearer {srv.token}"}
    assert client.put(srv.session_url("s"), json={"uuid": "a"}, headers=auth).status_code == 201
    assert client.get(srv.session_url("s"), headers=auth).json() == {"loglines": [{"uuid": "a"}]}
