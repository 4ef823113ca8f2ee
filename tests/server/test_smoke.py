"""The fixture and the basic append/read round trip."""

from __future__ import annotations

import httpx

from ingress_logging.server import IngressServer


def test_fixture_server_appends_and_reads_back(ingress_server: IngressServer) -> None:
    auth = {"Authorization": f"Bearer {ingress_server.token}"}
    url = ingress_server.session_url("smoke-1")
    with httpx.Client() as client:
        first = client.put(url, json={"type": "user", "uuid": "u-1"}, headers=auth)
        second = client.put(
            url, json={"type": "user", "uuid": "u-2"}, headers={**auth, "Last-Uuid": "u-1"}
        )
        read = client.get(url, headers=auth)
    assert (first.status_code, second.status_code) == (201, 200)
    assert read.json() == {
        "loglines": [{"type": "user", "uuid": "u-1"}, {"type": "user", "uuid": "u-2"}]
    }
    assert [e["uuid"] for e in ingress_server.entries("smoke-1")] == ["u-1", "u-2"]
    assert ingress_server.token not in repr(ingress_server)
