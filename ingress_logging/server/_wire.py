"""What an error reply is: the ``Reply`` a route raises and the error types by status."""

from __future__ import annotations

__all__ = ["ERROR_TYPES", "Reply"]


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

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
