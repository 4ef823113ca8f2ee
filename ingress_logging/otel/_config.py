"""Exporter settings from arguments and environment variables.

Auto-configuration (``OTEL_LOGS_EXPORTER=ingress``) builds the exporters with
no arguments, so everything has an environment fallback. Only what is
specific to the exporters is read here; the token
(``INGRESS_LOGGING_TOKEN`` / ``INGRESS_LOGGING_TOKEN_FILE``, plugins first)
and the URL (``INGRESS_LOGGING_URL`` / ``INGRESS_LOGGING_BASE_URL``) are
resolved per request by ``plugins.PluginHost``, exactly as for the stdlib
handler, which is also what lets both share one engine.
"""

from __future__ import annotations

import os
from typing import Final

from .._defaults import ENV_URL, build_session_url
from .._session_id import validate_session_id
from ..errors import ConfigError, InvalidSessionIdError

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "ENV_SESSION_ID",
    "ENV_SHUTDOWN_TIMEOUT",
    "check_url_variable",
    "default_session_id",
    "shutdown_timeout",
]

#: Session for records and spans that name none (no ``session.id`` attribute).
ENV_SESSION_ID: Final = "INGRESS_LOGGING_SESSION_ID"
#: Longest wait, in seconds, of ``shutdown()`` for delivery (default 5).
ENV_SHUTDOWN_TIMEOUT: Final = "INGRESS_LOGGING_SHUTDOWN_TIMEOUT"
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0


def default_session_id(session_id: str | None) -> str | None:
    """The constructor's ``session_id``, else ``INGRESS_LOGGING_SESSION_ID``, validated.

    Raises:
        ConfigError: the id (argument or variable) is not a valid session id;
            the message names where it came from.
    """
    source = "session_id"
    if session_id is None:
        session_id = os.environ.get(ENV_SESSION_ID, "").strip() or None
        source = ENV_SESSION_ID
    if session_id is None:
        return None
    try:
        return validate_session_id(session_id)
    except InvalidSessionIdError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def shutdown_timeout(value: float | None) -> float:
    """The constructor's ``shutdown_timeout``, else the variable, else 5 seconds."""
    source = "shutdown_timeout"
    if value is None:
        raw = os.environ.get(ENV_SHUTDOWN_TIMEOUT, "").strip()
        if not raw:
            return DEFAULT_SHUTDOWN_TIMEOUT
        source = ENV_SHUTDOWN_TIMEOUT
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{source} must be a number of seconds, not {raw[:32]!r}") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ConfigError(f"{source} must be a non-negative number of seconds, not {value!r}")
    return float(value)


def check_url_variable(url: str | None, base_api_url: str | None) -> None:
    """Refuse an unusable ``INGRESS_LOGGING_URL`` now, when it is the URL in use.

    The URL is resolved per request on the delivery worker, so a template
    without ``{session_id}`` (say, a bare base URL) would otherwise surface
    only as failed deliveries. Auto-configuration builds the exporters from
    the environment alone, which makes this the likeliest place for it.

    Raises:
        ConfigError: naming the variable (its value may be long, not secret).
    """
    if url is not None or base_api_url is not None:
        return  # the arguments win over the variable
    template = os.environ.get(ENV_URL) or None
    if template is None:
        return
    try:
        build_session_url("probe", url_template=template)
    except ConfigError as exc:
        raise ConfigError(f"{ENV_URL}: {exc}") from None
