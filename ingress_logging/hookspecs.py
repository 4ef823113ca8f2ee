"""The hooks a plugin can implement: the reference documentation lives here.

A plugin is any object (usually a module) with functions decorated by
``@ingress_logging.hookimpl`` whose names match the specifications below.
Plugins are found through the ``ingress_logging`` entry-point group or
registered in code with ``ingress_logging.plugins.register(obj)``; see
``docs/plugins.md`` for a worked example.

Call semantics, chosen per hook:

* ``ingress_auth_token`` and ``ingress_session_url`` are *first result wins*:
  plugins are asked newest-registered first, the first non-``None`` answer is
  used, and the built-in default plugin (``ingress_logging._defaults``) is
  always asked last.
* ``ingress_request_headers`` is *merged*: every plugin contributes a dict; for
  a header named by two plugins the one that would win a first-result hook
  (the one called earlier) wins.
* ``ingress_diagnostic`` is *1:N*: every sink sees every event, and a sink that
  raises is isolated and counted.
* ``ingress_prepare_entry`` is a *chain*: each plugin sees the entry as the
  previous one left it, and may replace it, leave it, or drop it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .diagnostics import DiagnosticData, Level

__all__ = [
    "DROP",
    "PROJECT_NAME",
    "Verdict",
    "hookimpl",
    "hookspec",
    "ingress_auth_token",
    "ingress_diagnostic",
    "ingress_prepare_entry",
    "ingress_request_headers",
    "ingress_session_url",
]

#: The pluggy project name and the entry-point group plugins are found in.
PROJECT_NAME: Final = "ingress_logging"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Verdict(enum.Enum):
    """Special answers an ``ingress_prepare_entry`` implementation can give."""

    #: Drop the entry: it is never queued or sent (the host counts it).
    DROP = "drop"


#: Return this from ``ingress_prepare_entry`` to drop the entry.
DROP: Final = Verdict.DROP


@hookspec(firstresult=True)
def ingress_auth_token(session_id: str) -> str | None:
    """Return the bearer token for requests about ``session_id``, or ``None`` to pass.

    Called once per request (not once per process), so a plugin that reads a
    short-lived token from a vault or a rotating file is picked up as soon as
    the token changes. The first non-``None`` answer wins; when every plugin
    passes, the host uses, in order: the token given to the client's
    constructor, the ``INGRESS_LOGGING_TOKEN`` environment variable, then the
    file named by ``INGRESS_LOGGING_TOKEN_FILE`` (re-read when it changes).

    The token is a secret: never log it, put it in an exception message or
    return it from any other hook.

    :param session_id: the validated session id the request is about.
    :return: the token (without the ``Bearer`` prefix) or ``None``.

    .. versionadded:: 0.1.0
    """


@hookspec(firstresult=True)
def ingress_session_url(session_id: str) -> str | None:
    """Return the append/read URL for ``session_id``, or ``None`` to pass.

    Use this to point sessions at another service, or to route sessions to
    different regions. The first non-``None`` answer wins; when every plugin
    passes, the host uses its ``url_template``, then its ``base_api_url``
    (``{base_api_url}/v1/session_ingress/session/{session_id}``), then the
    ``INGRESS_LOGGING_URL`` template, then ``INGRESS_LOGGING_BASE_URL``; with
    none of them, ``ConfigError`` (there is no built-in host).

    ``session_id`` has already been validated against the allow-list in
    ``ingress_logging._session_id``; if you build the URL yourself, percent-
    encode it with ``ingress_logging._session_id.quote_session_id``.

    :param session_id: the validated session id.
    :return: an absolute ``http(s)`` URL, or ``None``.

    .. versionadded:: 0.1.0
    """


@hookspec
def ingress_request_headers(session_id: str) -> Mapping[str, str] | None:
    """Return extra HTTP headers for every request about ``session_id``.

    Every plugin's answer is merged (header names compared case-insensitively).
    When two plugins name the same header, the answer of the plugin called
    first wins - the same plugin that would win ``ingress_auth_token`` - so
    a plugin registered later can override an installed one. ``None`` or
    an empty dict adds nothing.

    ``Authorization`` is reserved: it always comes from ``ingress_auth_token``
    and is removed from what this hook returns, so a token can't arrive by a
    path that is not treated as a secret. Names and values must be ``str``
    without CR or LF.

    :param session_id: the validated session id.
    :return: a mapping of header name to value, or ``None``.

    .. versionadded:: 0.1.0
    """


@hookspec
def ingress_diagnostic(level: Level, event: str, data: DiagnosticData) -> None:
    """Observe one diagnostics event (a sink).

    Every implementation receives every event: the seed's events (such as
    ``session_persist_fail_status``) and this library's own (such as
    ``delivery_dropped``); the names are constants in
    ``ingress_logging.diagnostics``. ``data`` holds small numbers and short
    enum-like strings only - never entry content, tokens or personal data.

    A sink that raises is caught, counted on the host (``sink_failures``) and
    reported as ``diagnostic_sink_failed`` to the stdlib logger; it never
    breaks delivery or reaches the other sinks. Sinks run on the thread that
    produced the event (often a delivery worker), so they must be quick and
    must not log through an ``IngressHandler`` (that would ship diagnostics
    about shipping, forever).

    :param level: one of ``"debug"``, ``"info"``, ``"warn"``, ``"error"``.
    :param event: the event name.
    :param data: the event's fields.

    .. versionadded:: 0.1.0
    """


@hookspec
def ingress_prepare_entry(entry: dict[str, Any], record: object) -> dict[str, Any] | Verdict | None:
    """Redact or enrich ``entry`` before it is queued for delivery.

    Implementations run as a chain: each sees the entry as the previous one
    left it. Return:

    * a ``dict`` - it replaces the entry (return a new dict or the mutated one);
    * ``None`` - the entry passes on unchanged (in-place edits still count);
    * ``ingress_logging.hookspecs.DROP`` - the entry is dropped and counted.

    If an implementation raises, the host *fails closed*: the entry is
    dropped and counted (``prepare_failures``), because letting it through
    unredacted could leak exactly the secret a redaction plugin exists to
    remove.

    It runs where the entry is built, usually a delivery worker thread,
    inside a copy of the context the entry was submitted in: the caller's
    context variables read as they were at the log call (thread-locals do
    not); ``record`` carries the rest.

    :param entry: the transcript entry (a JSON-ready ``dict``).
    :param record: where it came from - a ``logging.LogRecord``, an
        OpenTelemetry log record or span, or ``None`` for entries appended
        directly.
    :return: a replacement entry, ``None`` or ``DROP``.

    .. versionadded:: 0.1.0
    """
