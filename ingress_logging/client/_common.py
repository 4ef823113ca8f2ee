"""What the blocking and the asyncio client share that is not a protocol decision.

URL building and checking, header building, token sanity, the capped body
reader's bookkeeping, the constructor's argument handling and the state both
drivers keep (per-session heads, the pending append). Everything that decides
"what happens after this reply" lives in ``ingress_logging.protocol``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson

from .. import _defaults
from .._session_id import quote_session_id
from ..errors import ConfigError, InsecureTransportError, InvalidURLError
from ..protocol import Action, AppendExchange, Done, RetryPolicy

__all__ = [
    "ANTHROPIC_VERSION",
    "APPEND_BODY_CAP",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "ClientSettings",
    "HeadMap",
    "PendingAppend",
    "ResponseTooLargeError",
    "TokenSource",
    "append_headers",
    "check_url",
    "clean_token",
    "describe_transport_error",
    "entry_uuid",
    "is_loopback",
    "oauth_headers",
    "read_headers",
    "resolve_settings",
    "serialise_entry",
    "session_read_url",
    "teleport_events_url",
]

logger = logging.getLogger("ingress_logging.client")

TokenSource = str | Callable[[], str | None]

#: Seconds; the seed gives reads 20 s. Appends get this default (the seed has none).
DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
DEFAULT_READ_TIMEOUT: Final = 20.0
#: Largest body read from a session read or an events page (bytes, after decoding).
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
#: An append's reply body carries nothing we use; read at most this much of it.
APPEND_BODY_CAP: Final = 64 * 1024
#: The seed's getOAuthHeaders.
ANTHROPIC_VERSION: Final = "2023-06-01"

_SESSION_PATH: Final = "/v1/session_ingress/session/"
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})


class ResponseTooLargeError(Exception):
    """A reply body exceeded the cap; it was not read to the end."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The constructor's arguments, checked and with defaults applied."""

    token_set: bool
    base_api_url: str | None
    policy: RetryPolicy
    timeout: httpx.Timeout
    read_timeout: httpx.Timeout
    allow_insecure_http: bool
    max_response_bytes: int

    def api_base(self) -> str:
        """Base URL for the OAuth read and teleport events (read at call time).

        Raises:
            ConfigError: neither ``base_api_url`` nor ``INGRESS_LOGGING_BASE_URL``.
        """
        base = self.base_api_url or _defaults.env_base_url()
        if base is None:
            raise ConfigError(
                f"no service root is configured for OAuth reads: set "
                f"{_defaults.ENV_BASE_URL} or pass base_api_url="
            )
        return base.rstrip("/")


def _timeout(value: float | httpx.Timeout | None, what: str) -> httpx.Timeout:
    if isinstance(value, httpx.Timeout):
        return value
    if value is None or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds or an httpx.Timeout")
    return httpx.Timeout(float(value))


def resolve_settings(
    *,
    token: TokenSource | None,
    base_api_url: str | None,
    retry_policy: RetryPolicy | None,
    timeout: float | httpx.Timeout,
    read_timeout: float | httpx.Timeout,
    allow_insecure_http: bool,
    max_response_bytes: int,
) -> ClientSettings:
    """Check the arguments and apply the defaults; raise on bad input."""
    policy = RetryPolicy() if retry_policy is None else retry_policy
    if not isinstance(policy, RetryPolicy):
        raise TypeError(f"retry_policy must be a RetryPolicy, not {type(policy).__name__}")
    if token is not None and not (isinstance(token, str) or callable(token)):
        raise TypeError(f"token must be a str, a callable or None, not {type(token).__name__}")
    if base_api_url is not None:
        _parse_http_url(base_api_url)
    if max_response_bytes < 1:
        raise ValueError("max_response_bytes must be positive")
    return ClientSettings(
        token_set=token is not None,
        base_api_url=base_api_url,
        policy=policy,
        timeout=_timeout(timeout, "timeout"),
        read_timeout=_timeout(read_timeout, "read_timeout"),
        allow_insecure_http=bool(allow_insecure_http),
        max_response_bytes=int(max_response_bytes),
    )


# --- URLs -------------------------------------------------------------------


def _parse_http_url(url: object) -> tuple[str, str]:
    """(scheme, host) of an absolute http(s) URL; InvalidURLError otherwise."""
    if not isinstance(url, str):
        raise InvalidURLError(f"url must be a str, not {type(url).__name__}")
    if any(c in url for c in "\r\n\0\t ") or not url.isprintable():
        raise InvalidURLError("url contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidURLError(f"malformed url: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidURLError("url must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and reprs; tokens go in headers only.
        raise InvalidURLError("url must not contain credentials")
    try:
        # What httpx and the resolver will do with it; a host they cannot encode
        # (an empty or 64+ character label, a bad A-label) is refused here, not
        # with a UnicodeError from inside the first request.
        httpx.URL(url).host  # noqa: B018 - decodes the host (IDNA) as building a request does
        host.encode("idna")
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidURLError(f"malformed url host: {type(exc).__name__}") from None
    return scheme, host


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` (the name, not its subdomains)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: object, *, allow_insecure_http: bool) -> str:
    """Refuse a URL a bearer token must not travel to; return it unchanged.

    Raises:
        InvalidURLError: not an absolute http(s) URL, or it carries credentials.
        InsecureTransportError: plain http to a host that is not loopback.
    """
    if isinstance(url, str) and (url, allow_insecure_http) in _checked:
        return url  # the same few URLs come back for every append
    _check_url(url, allow_insecure_http)
    assert isinstance(url, str)
    if len(_checked) >= _CHECKED_MAX:
        _checked.clear()
    _checked.add((url, allow_insecure_http))
    return url


#: URLs already found acceptable (a pure function of the string and the flag).
_checked: set[tuple[str, bool]] = set()
_CHECKED_MAX: Final = 4096


def _check_url(url: object, allow_insecure_http: bool) -> None:
    scheme, host = _parse_http_url(url)
    if scheme == "http" and not allow_insecure_http and not is_loopback(host):
        raise InsecureTransportError(
            f"refusing to send a bearer token over plain http to {host!r}; "
            "use https, or pass allow_insecure_http=True"
        )


def session_read_url(base: str, session_id: str) -> str:
    return base + _SESSION_PATH + quote_session_id(session_id)


def teleport_events_url(base: str, session_id: str) -> str:
    return f"{base}/v1/code/sessions/{quote_session_id(session_id)}/teleport-events"


def describe_transport_error(exc: BaseException) -> str:
    """What went wrong on the wire, in a few words (``connection refused``)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate not accepted"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, TimeoutError):
        return "no reply in time"
    if not isinstance(exc, httpx.HTTPError) and isinstance(exc.__cause__, OSError):
        # The pipelined connection wraps the socket's error; its cause says why.
        return describe_transport_error(exc.__cause__)
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "no reply in time"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        for needle, words in (
            ("refused", "connection refused"),
            ("name or service not known", "host name not found"),
            ("nodename nor servname", "host name not found"),
            ("no address associated", "host name not found"),
            ("temporary failure in name resolution", "host name not found"),
            ("unreachable", "network unreachable"),
            ("certificate", "TLS certificate not accepted"),
            ("ssl", "TLS handshake failed"),
        ):
            if needle in text:
                return words
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed without a reply"
    if isinstance(exc, httpx.NetworkError):
        return "the connection failed"
    if isinstance(exc, ResponseTooLargeError):
        return "the reply was too large"
    return type(exc).__name__


# --- tokens and headers -----------------------------------------------------


def clean_token(token: object) -> str | None:
    """The token if it can be sent as a header value, else None (never echoed)."""
    if not isinstance(token, str):
        return None
    token = token.strip()
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        if token:
            logger.debug("token refused: not a valid HTTP header value")
        return None
    return token


def append_headers(extra: Mapping[str, str], token: str, last_uuid: str | None) -> dict[str, str]:
    headers = dict(extra)
    headers["Authorization"] = f"Bearer {token}"
    headers["Content-Type"] = "application/json"
    if last_uuid:
        headers["Last-Uuid"] = last_uuid
    return headers


def read_headers(extra: Mapping[str, str], token: str) -> dict[str, str]:
    headers = dict(extra)
    headers["Authorization"] = f"Bearer {token}"
    return headers


def oauth_headers(access_token: object, org_uuid: object) -> dict[str, str]:
    """The seed's ``getOAuthHeaders(accessToken)`` plus ``x-organization-uuid``."""
    token = clean_token(access_token)
    if token is None:
        raise ValueError("access_token must be a non-empty str usable as an HTTP header")
    if not isinstance(org_uuid, str) or not org_uuid or clean_token(org_uuid) != org_uuid:
        raise ValueError("org_uuid must be a non-empty str without spaces or control characters")
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "anthropic-version": ANTHROPIC_VERSION,
        "x-organization-uuid": org_uuid,
    }


# --- entries ----------------------------------------------------------------


def entry_uuid(entry: Mapping[str, Any]) -> str | None:
    uuid = entry.get("uuid")
    return uuid if isinstance(uuid, str) and uuid else None


def serialise_entry(entry: object) -> bytes:
    """The append body, once per entry. TypeError for what JSON cannot carry."""
    if not isinstance(entry, Mapping):
        raise TypeError(f"entry must be a dict, not {type(entry).__name__}")
    try:
        return orjson.dumps(entry, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"entry is not JSON-serialisable: {exc}") from None


# --- driver state -----------------------------------------------------------


class HeadMap:
    """Each session's chain head as this client believes it.

    Plain dict operations are atomic under the GIL, and a session's head is
    only written by the one append that holds that session's turn (or by a
    read), so no lock is needed.
    """

    __slots__ = ("_heads",)

    def __init__(self) -> None:
        self._heads: dict[str, str] = {}

    def get(self, session_id: str) -> str | None:
        return self._heads.get(session_id)

    def set(self, session_id: str, head: str | None) -> None:
        if head is None:
            self._heads.pop(session_id, None)
        else:
            self._heads[session_id] = head

    def clear(self, session_id: str | None = None) -> None:
        if session_id is None:
            self._heads.clear()
        else:
            self._heads.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._heads)


@dataclass(slots=True, eq=False)
class PendingAppend:
    """One entry on its way into a session: the exchange plus what each attempt needs.

    ``action`` is what the driver must do next; ``advance`` performs it. The
    body is serialised once; the token is resolved again for every attempt
    (tokens rotate), so it is not kept here beyond the first attempt.

    ``chained``: the entry whose ``parentUuid`` the caller filled itself (the
    engine); each attempt's body then names the attempt's ``Last-Uuid`` as
    ``parentUuid``, so an adopted head (a 409, a read) rewrites the link too.

    ``behind``: a pipelined window's recovery whose entry was written behind
    its predecessor's append (``AppendWindow.recovery_behind``): its exchange
    may yet show that the path reorders appends (``protocol.reorder_shown``).
    """

    session_id: str
    url: str
    body: bytes = field(repr=False)  # entry content: not for logs
    exchange: AppendExchange
    first_token: str | None = field(default=None, repr=False)
    chained: dict[str, Any] | None = field(default=None, repr=False)
    behind: bool = False

    @property
    def action(self) -> Action:
        """What has to happen next (the exchange's latest action)."""
        action = self.exchange.action
        assert action is not None, "the exchange was not started"
        return action

    def body_for(self, last_uuid: str | None) -> bytes:
        """The body of an attempt sent with ``last_uuid``."""
        entry = self.chained
        if entry is not None and entry.get("parentUuid") != last_uuid:
            entry["parentUuid"] = last_uuid
            self.body = serialise_entry(entry)
        return self.body

    @property
    def done(self) -> bool:
        return isinstance(self.exchange.action, Done)
