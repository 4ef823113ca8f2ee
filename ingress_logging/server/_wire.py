"""Reply plumbing: the ``Reply`` a route raises, error types by status, the Date
header, the status line and header block of a reply."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

__all__ = [
    "ERROR_TYPES",
    "REASONS",
    "ClientGone",
    "Reply",
    "http_date",
    "json_reply",
    "reply_head",
]

#: Reason phrases by status.
REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_STATUS_LINES = {s: b"HTTP/1.1 %d %s\r\n" % (s, REASONS[s]) for s in (200, 201, 409)}


#: The ``type`` of a JSON error body, by status (anything else: ``api_error``).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "method_not_allowed",
    409: "conflict_error",
    411: "invalid_request_error",
    501: "not_implemented_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class Reply(Exception):
    """Raised by a route to answer with a JSON error ``{"error": {message, type}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.close = close  # the connection ends after this reply


class ClientGone(Exception):
    """The request's connection is closed: it ends without a reply or a write."""


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode())
    return _date_cache[1]


def reply_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The status line and header block of a reply."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown"))
    return line + b"".join([name + b": " + value + b"\r\n" for name, value in headers]) + b"\r\n"


#: The start of a JSON reply (status line, Date, Content-Type) by status, for one Date.
_json_starts: tuple[bytes, dict[int, bytes]] = (b"", {})


def json_reply(
    status: int,
    body: bytes,
    extra: dict[str, str] | None = None,
    *,
    close: bool = False,
) -> bytes:
    """A whole JSON reply, the bytes :func:`reply_head` makes for the headers
    Date, Content-Type, Content-Length, ``extra`` (latin-1) and, when
    ``close``, Connection; its start is reused for the rest of the second."""
    global _json_starts
    date = http_date()
    starts_date, starts = _json_starts
    if starts_date is not date:
        starts = {}
        _json_starts = (date, starts)
    start = starts.get(status)
    if start is None:
        start = reply_head(status, [(b"date", date), (b"content-type", b"application/json")])
        start = starts[status] = start[:-2]  # without the blank line that ends the head
    tail = b"content-length: %d\r\n" % len(body)
    if extra:
        tail += b"".join([f"{k}: {v}\r\n".encode("latin-1") for k, v in extra.items()])
    if close:
        tail += b"connection: close\r\n"
    return b"".join([start, tail, b"\r\n", body])
