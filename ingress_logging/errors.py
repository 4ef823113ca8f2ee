"""Exceptions raised by ingress_logging.

One root, so callers can catch everything this library raises with one clause::

    IngressLoggingError
    ├── SessionExpiredError        a read got 401: the token is expired or invalid
    ├── InvalidSessionIdError      (also ValueError) refused before any request
    ├── InsecureTransportError     (also ValueError) bearer token over plain http
    ├── InvalidURLError            (also ValueError) not an absolute http(s) URL
    ├── InvalidResponseError       the server's reply had the wrong shape
    ├── ConfigError                a setting or environment variable is unusable
    └── SpoolLockedError           another process already consumes this spool

No exception text ever contains a bearer token: messages are built from
status codes, event names and session ids only.
"""

from __future__ import annotations

__all__ = [
    "SESSION_EXPIRED_MESSAGE",
    "ConfigError",
    "IngressLoggingError",
    "InsecureTransportError",
    "InvalidResponseError",
    "InvalidSessionIdError",
    "InvalidURLError",
    "SessionExpiredError",
    "SpoolLockedError",
]

#: Speaks of the token the user configured (there is no login command here).
SESSION_EXPIRED_MESSAGE = (
    "the server rejected the token (401): it is expired or invalid; "
    "check INGRESS_LOGGING_TOKEN, INGRESS_LOGGING_TOKEN_FILE or token="
)


class IngressLoggingError(Exception):
    """Root of every exception this library raises on purpose."""


class SessionExpiredError(IngressLoggingError):
    """A read was answered 401; retrying with the same token cannot help."""

    def __init__(self, message: str = SESSION_EXPIRED_MESSAGE) -> None:
        super().__init__(message)


class InvalidSessionIdError(IngressLoggingError, ValueError):
    """A session id that could escape its URL path segment or storage key."""


class InsecureTransportError(IngressLoggingError, ValueError):
    """A bearer token would travel over plain http to a non-loopback host."""


class InvalidURLError(IngressLoggingError, ValueError):
    """A URL that is not an absolute http(s) URL, or that carries credentials."""


class InvalidResponseError(IngressLoggingError):
    """The server answered, but not in the shape the protocol promises."""


class ConfigError(IngressLoggingError):
    """A configuration value (argument or environment variable) is unusable."""


class SpoolLockedError(IngressLoggingError):
    """Another live process holds the lock on this spool directory."""
