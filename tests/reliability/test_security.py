"""Security: no token over plain http to a remote host, TLS verified by default.

(The third rule - the token never appears in captured output - is checked by
the autouse ``leak_guard`` fixture after every test of this suite.)
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingress_logging import InsecureTransportError, RetryPolicy, SessionIngressClient

FAST = RetryPolicy(max_attempts=2, base_delay=0.001)


@pytest.mark.parametrize(
    "base", ["http://ingress.example.com", "http://10.1.2.3:8080", "http://[2001:db8::1]"]
)
def test_plain_http_to_a_remote_host_is_refused_before_any_request(base: str, token: str) -> None:
    with SessionIngressClient(token, base_api_url=base, retry_policy=FAST) as client:
        with pytest.raises(InsecureTransportError) as exc:
            client.append_session_log("s1", {"uuid": "u1"})
        assert token not in str(exc.value)
        with pytest.raises(InsecureTransportError):
            client.get_session_logs("s1")


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


class TLSServer:
    """A TLS listener with a self-signed certificate; records what it is sent."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes_failed = 0
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            with raw:
                raw.settimeout(5)
                try:
                    conn = self.ctx.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    self.handshakes_failed += 1
                    continue
                with conn:
                    data = b""
                    try:
                        while not _complete(data):
                            chunk = conn.recv(65536)
                            if not chunk:
                                break
                            data += chunk
                        self.requests.append(data)
                        conn.sendall(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
                    except (ssl.SSLError, OSError):
                        pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tls_server(tmp_path: Path, test_cert: tuple[str, str]) -> Iterator[TLSServer]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text(test_cert[0])
    key.write_text(test_cert[1])
    srv = TLSServer(cert, key)
    yield srv
    srv.close()


def test_tls_verification_is_on_by_default(tls_server: TLSServer, token: str) -> None:
    base = f"https://127.0.0.1:{tls_server.port}"
    with SessionIngressClient(token, base_api_url=base, retry_policy=FAST) as client:
        assert client.append_session_log("s1", {"uuid": "u1"}) is False
    # The handshake failed, so not one request byte (and no token) reached it.
    assert tls_server.handshakes_failed >= 1
    assert tls_server.requests == []


def test_tls_with_the_certificate_trusted_does_deliver(
    tls_server: TLSServer, token: str, test_cert: tuple[str, str]
) -> None:
    """The control for the test above: the same server, its certificate trusted."""
    ctx = ssl.create_default_context(cadata=test_cert[0])
    base = f"https://127.0.0.1:{tls_server.port}"
    with (
        httpx.Client(verify=ctx) as http,
        SessionIngressClient(
            token, base_api_url=base, retry_policy=FAST, http_client=http
        ) as client,
    ):
        assert client.append_session_log("s1", {"uuid": "u1"}) is True
    assert len(tls_server.requests) == 1
    assert tls_server.requests[0].startswith(b"PUT /v1/session_ingress/session/s1 ")
    assert f"authorization: Bearer {token}".lower().encode() in tls_server.requests[0].lower()


def test_the_leak_guard_catches_a_leak(leak_guard: object, token: str) -> None:
    """The control for every test of this suite: a logged token is seen."""
    import logging

    logging.getLogger("some.app").debug("Authorization: Bearer %s", token)
    leaks = leak_guard.leaks  # type: ignore[attr-defined]
    assert leaks
    assert all(token not in leak for leak in leaks)  # reports never repeat it
    leaks.clear()


def test_engine_and_handler_refuse_plain_http_to_a_remote_host(token: str) -> None:
    """192.0.2.1 (TEST-NET-1) is unroutable: a connection attempt would hang
    until its timeout; the refusal is immediate, counted, and raises nothing."""
    import logging
    import time

    from ingress_logging import IngressHandler
    from ingress_logging.delivery import DeliveryEngine

    engine = DeliveryEngine(
        base_api_url="http://192.0.2.1", token=token, retry_policy=FAST, timeout=30
    )
    log = logging.getLogger("reliability.security.insecure")
    log.propagate = False
    log.addHandler(IngressHandler(session_id="s1", engine=engine))
    log.setLevel(logging.INFO)
    try:
        started = time.monotonic()
        assert engine.submit("s1", {"type": "user"})
        log.info("through the handler")
        result = engine.flush(10)
        assert time.monotonic() - started < 5
        assert (result.failed, result.pending) == (2, 0)
        assert engine.stats().failed_by_reason == {"error:InsecureTransportError": 2}
    finally:
        for h in list(log.handlers):
            log.removeHandler(h)
        engine.close(1)
