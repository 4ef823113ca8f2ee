"""Arbitrary server replies (property-based): the client never crashes or hangs.

A raw socket server answers every request with whatever hypothesis draws:
any status 200-599, any headers (including nonsense ``x-last-uuid`` and
``Retry-After`` values), any body. Appends must end in True or False; reads
must return or raise one of this library's own errors - nothing else, and
within the request timeout. Examples: ``RELIABILITY_REPLY_EXAMPLES``
(default 150).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress_logging import IngressLoggingError, RetryPolicy, SessionIngressClient

EXAMPLES = int(os.environ.get("RELIABILITY_REPLY_EXAMPLES", "150"))
POLICY = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002, retry_after_cap=0.01)


class ScriptedServer:
    """Reads one HTTP request per connection and sends back ``self.reply`` raw."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        self.served = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    conn.sendall(self.reply)
                    self.served += 1
                except OSError:
                    pass


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.sock.close()


header_names = st.sampled_from(
    ["x-last-uuid", "retry-after", "content-type", "x-anything", "set-cookie", "location"]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200
).map(str.strip)
bodies = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from(
        [
            b'{"loglines": []}',
            b'{"loglines": [1, "x", null, {"uuid": 5}]}',
            b'{"loglines": {"uuid": "a"}}',
            b"[]",
            b"null",
            b'{"data": "nope"}',
            b"\xff\xfe\x00",
        ]
    ),
)


def build_reply(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in ("content-length", "connection")]
    lines += [f"content-length: {len(body)}", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # Generation time is not what this tests; a busy CI box must not fail it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=st.integers(200, 599),
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    body=bodies,
)
def test_any_reply_ends_in_a_result_or_a_library_error(
    scripted: ScriptedServer,
    token: str,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    scripted.reply = build_reply(status, headers, body)
    base = f"http://127.0.0.1:{scripted.port}"
    with SessionIngressClient(token, base_api_url=base, retry_policy=POLICY, timeout=2) as client:
        started = time.monotonic()
        result = client.append_session_log("s1", {"uuid": "u-1", "type": "user"})
        assert isinstance(result, bool)
        if status in (200, 201):
            assert result is True
        if status in (401, 400, 403, 404, 413, 422) or status >= 500:
            assert result is False
        try:
            logs = client.get_session_logs("s1")
        except IngressLoggingError:
            pass
        else:
            assert logs is None or isinstance(logs, list)
        # Two attempts plus a read, each bounded by the 2 s timeout.
        assert time.monotonic() - started < 10
