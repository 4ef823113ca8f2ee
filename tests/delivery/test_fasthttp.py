"""The http.client-backed httpx transport the engine uses by default."""

from __future__ import annotations

import httpx
import pytest

from ingress_logging.client._fasthttp import HTTPClientTransport, build_http_client


def test_plain_httpx_calls_work_and_keep_alive_survives_a_server_restart(ingress_server):
    transport = HTTPClientTransport()
    with httpx.Client(transport=transport) as client:
        url = ingress_server.session_url("fh")
        headers = {"Authorization": f"Bearer {ingress_server.token}"}
        r = client.put(url, json={"uuid": "00000000-0000-4000-8000-000000000001"}, headers=headers)
        assert r.status_code in (200, 201)
        assert len(transport._open) == 1
        ingress_server.restart()  # the idle connection is now closed by the server
        r = client.get(url, headers=headers)
        assert r.status_code == 200  # the stale connection was noticed, not used
        assert r.json()["loglines"][0]["uuid"].endswith("0001")
        assert len(transport._open) == 1
    assert transport._open == set()


def test_engine_sees_no_retry_after_a_server_restart_between_entries(ingress_server, make_engine):
    engine = make_engine()
    engine.submit("rs", {"type": "user", "message": "1"})
    assert engine.flush(5)
    ingress_server.restart()
    engine.submit("rs", {"type": "user", "message": "2"})
    assert engine.flush(5)
    assert engine.stats().retried == 0
    assert [e["message"] for e in ingress_server.entries("rs")] == ["1", "2"]


def test_connection_refused_is_an_httpx_connect_error(ingress_server_factory):
    srv = ingress_server_factory()
    url = srv.session_url("x")
    srv.stop()
    with httpx.Client(transport=HTTPClientTransport()) as client, pytest.raises(httpx.ConnectError):
        client.get(url)


def test_proxy_environment_falls_back_to_httpx_default(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    client = build_http_client(4)
    try:
        assert not isinstance(client._transport, HTTPClientTransport)
    finally:
        client.close()
    monkeypatch.delenv("HTTPS_PROXY")
    client = build_http_client(4)
    try:
        assert isinstance(client._transport, HTTPClientTransport)
    finally:
        client.close()


@pytest.fixture
def tls_server(tmp_path):
    """A tiny HTTPS server with a self-signed certificate for 127.0.0.1."""
    import http.server
    import shutil
    import ssl
    import subprocess
    import threading

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (ssl.SSLError, ConnectionError):
                self.close_connection = True

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handle_error = lambda request, address: None  # handshake refusals are expected
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_tls_is_verified_by_default_and_works_with_a_trusted_ca(tls_server):
    import ssl

    url, cert = tls_server
    with httpx.Client(transport=HTTPClientTransport()) as client, pytest.raises(httpx.ConnectError):
        client.get(url)  # self-signed: refused by the default context
    trusted = ssl.create_default_context(cafile=str(cert))
    transport = HTTPClientTransport(ssl_context=trusted)
    with httpx.Client(transport=transport) as client:
        assert client.get(url).text == "ok"
        assert client.get(url).text == "ok"
        assert len(transport._open) == 1  # one kept-alive TLS connection
