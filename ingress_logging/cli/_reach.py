"""Can the server be reached at all? One TCP connect, said in words.

The client reports a failed request as a diagnostics event without the
socket error behind it. When ``ship`` sees a request fail it asks this
module whether the server's address accepts connections: if not, there is
no point in trying the next line (each would fail the same way), and the
user gets one line naming the address and the reason instead.
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

__all__ = ["origin", "unreachable"]


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (what a user recognises as "the server")."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def unreachable(url: str, timeout: float) -> str | None:
    """``cannot connect to ORIGIN (reason)`` when nothing accepts a connection there.

    None when a TCP connection can be made (the failure was something else:
    a status, a reply cut short), or when the URL names no host.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            return None
    except OSError as exc:
        return f"cannot connect to {origin(url)} ({_reason(exc)})"
