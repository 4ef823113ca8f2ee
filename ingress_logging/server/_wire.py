"""Reply plumbing: the ``Reply`` a route raises, error types by status, the Date header."""

from __future__ import annotations

import time
from email.utils import formatdate

__all__ = ["ERROR_TYPES", "ClientGone", "Reply", "http_date"]


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
