"""What every command needs: where the service is, how to authenticate, how to retry.

The group's options land in one ``CliConfig``; commands ask it for a
``PluginHost`` (URL and token resolution, exactly as the library resolves
them), a ``SessionIngressClient``, and a plain-words account of where the
token came from. The token itself is held only inside the host and the
client; nothing here prints or formats it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import click
import httpx

from .. import _defaults
from .._messages import describe
from ..diagnostics import DiagnosticData, DiagnosticSink, Level, logger_sink
from ..errors import ConfigError, IngressLoggingError

if TYPE_CHECKING:
    import pluggy

    from ..client import SessionIngressClient
    from ..plugins import PluginHost

__all__ = [
    "ENV_DEBUG",
    "ENV_MAX_ATTEMPTS",
    "ENV_OAUTH_TOKEN",
    "ENV_ORG_UUID",
    "ENV_TIMEOUT",
    "CliConfig",
    "LastEvent",
    "one_line",
    "pass_config",
]

ENV_TIMEOUT: Final = "INGRESS_LOGGING_TIMEOUT"
ENV_MAX_ATTEMPTS: Final = "INGRESS_LOGGING_MAX_ATTEMPTS"
ENV_DEBUG: Final = "INGRESS_LOGGING_DEBUG"
ENV_OAUTH_TOKEN: Final = "INGRESS_LOGGING_OAUTH_TOKEN"
ENV_ORG_UUID: Final = "INGRESS_LOGGING_OAUTH_ORG_UUID"


@dataclass
class CliConfig:
    """Settings shared by every command (from options or environment variables).

    ``token_origin`` names where ``token`` came from (``"--token"`` or the
    environment variable) and is what diagnostics show instead of the value.
    """

    url: str | None = None
    base_url: str | None = None
    token: str | None = field(default=None, repr=False)
    token_origin: str | None = None
    url_origin_hint: str | None = None
    token_file: str | None = None
    timeout: float = 20.0
    max_attempts: int = 10
    base_delay: float = 0.5
    allow_insecure_http: bool = False
    debug: bool = False
    _pm: pluggy.PluginManager | None = field(default=None, repr=False)

    def problems(self) -> list[str]:
        """What is wrong with these settings, in plain words (empty when usable).

        Checked lazily rather than in ``__init__`` so that ``doctor`` can
        report every problem instead of dying on the first.
        """
        found: list[str] = []
        if self.url is not None and "{session_id}" not in self.url:
            found.append(
                f"the URL template (--url / {_defaults.ENV_URL}) must contain "
                f"'{{session_id}}', got {self.url!r}"
            )
        for name, value in (("--url", self.url), ("--base-url", self.base_url)):
            if value is not None and not value.startswith(("http://", "https://")):
                found.append(f"{name} must start with http:// or https://, got {value!r}")
        if not _defaults.url_configured(
            url_template=self.url, base_api_url=self.base_url
        ) and not _url_plugins(self.plugin_manager()):
            found.append(
                f"no session-ingress URL is configured: pass --url or --base-url, or set "
                f"{_defaults.ENV_URL} or {_defaults.ENV_BASE_URL}"
            )
        return found

    def check(self) -> None:
        """Raise ``ConfigError`` with the first problem, if any."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems[0])

    # -- resolution -------------------------------------------------------

    def plugin_manager(self) -> pluggy.PluginManager:
        """The process-wide plugin manager (entry points loaded once)."""
        if self._pm is None:
            from ..plugins import get_plugin_manager

            self._pm = get_plugin_manager()
        return self._pm

    def _token_source(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            return _defaults.token_files.get(self.token_file)
        return None

    def host(self) -> PluginHost:
        """A ``PluginHost`` with this configuration: the library's own precedence rules."""
        from ..plugins import PluginHost

        self.check()
        base = self.base_url
        if self.url is None and base is None:
            base = os.environ.get(_defaults.ENV_BASE_URL) or None
        return PluginHost(
            self.plugin_manager(),
            token=self._token_source if (self.token or self.token_file) else None,
            url_template=self.url,
            base_api_url=base,
        )

    def session_url(self, session_id: str) -> str:
        """The append/read URL for one session (validates the id)."""
        return self.host().session_url(session_id)

    def base_api_url(self) -> str:
        """Where the service lives: for the OAuth read, teleport events and ``doctor``."""
        if self.base_url:
            return self.base_url.rstrip("/")
        template = self.url or os.environ.get(_defaults.ENV_URL)
        if template and _defaults.SESSION_PATH in template:
            return template.split(_defaults.SESSION_PATH, 1)[0]
        env_base = _defaults.env_base_url()
        if env_base is None:
            self.check()
            raise ConfigError(
                f"cannot tell the service root from the URL template: pass --base-url or "
                f"set {_defaults.ENV_BASE_URL}"
            )
        return env_base.rstrip("/")

    def url_origin(self) -> str:
        """Where the session URL comes from, in words (for ``doctor``)."""
        if self.url_origin_hint is not None:
            return self.url_origin_hint
        if self.url is not None:
            return "--url / " + _defaults.ENV_URL
        if self.base_url is not None:
            return "--base-url / " + _defaults.ENV_BASE_URL
        if os.environ.get(_defaults.ENV_URL):
            return _defaults.ENV_URL
        if os.environ.get(_defaults.ENV_BASE_URL):
            return _defaults.ENV_BASE_URL
        return "nowhere (no --url, --base-url or environment variable set)"

    def client(self, *, diagnostics: DiagnosticSink | None = None) -> SessionIngressClient:
        """A blocking client with this configuration (the caller closes it)."""
        from ..client import SessionIngressClient
        from ..protocol import RetryPolicy

        self.check()
        return SessionIngressClient(
            self._token_source if (self.token or self.token_file) else None,
            base_api_url=self.base_api_url(),
            retry_policy=RetryPolicy(
                max_attempts=self.max_attempts,
                base_delay=self.base_delay,
                max_delay=max(self.base_delay, 8.0),
            ),
            timeout=self.timeout,
            read_timeout=self.timeout,
            plugins=self.plugin_manager(),
            allow_insecure_http=self.allow_insecure_http,
            diagnostics=diagnostics,
        )


def _url_plugins(pm: pluggy.PluginManager) -> bool:
    from ..plugins import url_plugins

    return bool(url_plugins(pm))


def one_line(exc: BaseException) -> str:
    """An exception as one readable line (no traceback, no token: see errors.py)."""
    if isinstance(exc, httpx.TransportError):
        from ..client import describe_transport_error

        where = ""
        try:
            url = exc.request.url
            where = f" to {url.scheme}://{url.netloc.decode('ascii')}"
        except RuntimeError:  # an error raised before it had a request
            pass
        if isinstance(exc, httpx.ConnectError):
            text = f"cannot connect{where} ({describe_transport_error(exc)})"
        else:
            text = f"no reply{where.replace(' to ', ' from ', 1)} ({describe_transport_error(exc)})"
    elif isinstance(exc, IngressLoggingError | ValueError | OSError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


class LastEvent:
    """Diagnostics sink that remembers each thread's last warning: why a call failed.

    The CLI passes it to the client instead of the default sink, so library
    warnings become part of its own one-line messages rather than stray log
    lines on stderr; with ``--debug`` every event is also logged.
    """

    def __init__(self, debug: bool = False) -> None:
        self._local = threading.local()
        self._debug = debug

    def __call__(self, level: Level, event: str, data: DiagnosticData) -> None:
        if level in ("warn", "error"):
            self._local.event = event
            self._local.data = dict(data)
        if self._debug:
            logger_sink(level, event, data)

    def pop(self, default: str = "append failed") -> str:
        """The last warning as a sentence with its numbers, then forget it."""
        event = getattr(self._local, "event", None)
        data = getattr(self._local, "data", {})
        self._local.event = None
        if event is None:
            return default
        sentence = describe(event, data)
        if sentence.startswith("no reply from the server"):
            from .._notices import NOTICES

            words = NOTICES.last_transport_error()
            if words:
                sentence = f"{sentence} ({words})"
        return sentence


#: Hands a command the group's ``CliConfig`` (``@pass_config``).
pass_config = click.make_pass_decorator(CliConfig)
