"""The default plugin: what happens when no plugin has an opinion.

It is registered in every plugin manager with ``trylast=True``, so any other
plugin's answer wins over it, and ``PluginHost`` also calls it directly as its
final fallback (after the constructor's own settings), so the library works
even with a bare ``pluggy.PluginManager``.

* token: ``INGRESS_LOGGING_TOKEN``, else the file named by
  ``INGRESS_LOGGING_TOKEN_FILE`` (stripped; re-read when its mtime, size or
  inode changes, so a rotated token is picked up on the next request).
* URL: the ``INGRESS_LOGGING_URL`` template (with ``{session_id}``), else
  ``{INGRESS_LOGGING_BASE_URL}/v1/session_ingress/session/{id}``. There is no
  built-in host: with neither set, ``ConfigError`` says what to set (a token
  must never travel somewhere the user did not name).
* diagnostics: the ``ingress_logging.diagnostics`` stdlib logger (never
  shipped), plus one JSON line per event in ``INGRESS_LOGGING_DIAGNOSTICS_FILE``
  when that is set (the seed's diagnostics-file format).

Environment variables are read at call time, not import time, so a host (or a
test) can change them while running.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Final

from ._session_id import quote_session_id
from .diagnostics import DiagnosticData, Level, logger_sink
from .errors import ConfigError
from .hookspecs import hookimpl

__all__ = [
    "DEFAULT_PLUGIN_NAME",
    "ENV_BASE_URL",
    "ENV_DIAGNOSTICS_FILE",
    "ENV_TOKEN",
    "ENV_TOKEN_FILE",
    "ENV_URL",
    "NO_URL_MESSAGE",
    "build_session_url",
    "env_token",
    "ingress_auth_token",
    "ingress_diagnostic",
    "ingress_session_url",
    "write_diagnostic",
]

DEFAULT_PLUGIN_NAME: Final = "ingress_logging.defaults"
SESSION_PATH: Final = "/v1/session_ingress/session/"
_MID_WRITE_SECONDS: Final = 2.0

ENV_TOKEN: Final = "INGRESS_LOGGING_TOKEN"
ENV_TOKEN_FILE: Final = "INGRESS_LOGGING_TOKEN_FILE"
ENV_URL: Final = "INGRESS_LOGGING_URL"
ENV_BASE_URL: Final = "INGRESS_LOGGING_BASE_URL"
ENV_DIAGNOSTICS_FILE: Final = "INGRESS_LOGGING_DIAGNOSTICS_FILE"

#: What to do when no URL is configured anywhere.
NO_URL_MESSAGE: Final = (
    f"no session-ingress URL is configured: set {ENV_URL} (a template with "
    f"'{{session_id}}') or {ENV_BASE_URL} (the service root), or pass url= / base_api_url="
)


def env_base_url() -> str | None:
    """``INGRESS_LOGGING_BASE_URL``, or None when unset or empty."""
    return os.environ.get(ENV_BASE_URL) or None


def url_configured(*, url_template: str | None = None, base_api_url: str | None = None) -> bool:
    """True when these settings or the environment name a URL (no built-in host)."""
    return bool(url_template or base_api_url or os.environ.get(ENV_URL) or env_base_url())


@dataclass(frozen=True)
class _FileToken:
    stamp: tuple[int, int, int]  # (st_mtime_ns, st_size, st_ino)
    value: str | None


class _TokenFileCache:
    """Reads a token file only when it changed since the last read.

    ``stat`` on every request is cheap; reading and stripping is only done
    when the file was rewritten or replaced (mtime, size or inode differ).
    A file found empty within a moment of being modified is taken to be
    mid-rewrite and the previous token is kept; empty for longer means "no
    token".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, _FileToken] = {}
        self.reads = 0  # how many times a file was actually read (tests use it)

    def get(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            with self._lock:
                self._cache.pop(path, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached.stamp == stamp:
                return cached.value
            try:
                with open(path, encoding="utf-8") as f:
                    value = f.read().strip() or None
            except (OSError, UnicodeDecodeError):
                # The message would name the path only; still, say nothing and
                # let the caller fall through to "no token".
                self._cache.pop(path, None)
                return None
            self.reads += 1
            if (
                value is None
                and cached is not None
                and cached.value is not None
                and time.time() - st.st_mtime < _MID_WRITE_SECONDS
            ):
                # Just truncated by a writer that rewrites in place: the new
                # token is a moment away. Keep the last one, cache nothing, and
                # read again next time. (Writers should rename atomically.)
                return cached.value
            self._cache[path] = _FileToken(stamp, value)
            return value


token_files: Final = _TokenFileCache()


def env_token() -> str | None:
    """The token from the environment: ``INGRESS_LOGGING_TOKEN``, else its file."""
    token = os.environ.get(ENV_TOKEN, "").strip()
    if token:
        return token
    path = os.environ.get(ENV_TOKEN_FILE, "")
    if path:
        return token_files.get(path)
    return None


def build_session_url(
    session_id: str, *, url_template: str | None = None, base_api_url: str | None = None
) -> str:
    """Session URL from a template (``{session_id}``) or a base URL; validates the id.

    With neither given, the environment decides (``INGRESS_LOGGING_URL``, then
    ``INGRESS_LOGGING_BASE_URL``); with nothing set, ``ConfigError`` names them.
    """
    quoted = quote_session_id(session_id)
    if url_template is None and base_api_url is None:
        url_template = os.environ.get(ENV_URL) or None
        if url_template is None:
            base_api_url = env_base_url()
            if base_api_url is None:
                raise ConfigError(NO_URL_MESSAGE)
    if url_template is not None:
        if "{session_id}" not in url_template:
            raise ConfigError("url template must contain '{session_id}'")
        try:
            return url_template.format(session_id=quoted)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"url template has a placeholder other than '{{session_id}}': {exc}"
            ) from None
    assert base_api_url is not None
    return base_api_url.rstrip("/") + SESSION_PATH + quoted


def write_diagnostic(level: Level, event: str, data: DiagnosticData, *, log: bool = True) -> None:
    """The default sink: the stdlib diagnostics logger and, if set, the diagnostics file."""
    if log:
        logger_sink(level, event, data)
    path = os.environ.get(ENV_DIAGNOSTICS_FILE)
    if path:
        line = json.dumps(
            {
                "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                "level": level,
                "event": event,
                "data": dict(data),
            },
            separators=(",", ":"),
            default=str,
        )
        # One write() of one line in append mode: lines from several threads
        # or processes do not interleave.
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@hookimpl(trylast=True)
def ingress_auth_token(session_id: str) -> str | None:
    """Token from ``INGRESS_LOGGING_TOKEN`` or ``INGRESS_LOGGING_TOKEN_FILE``."""
    return env_token()


@hookimpl(trylast=True)
def ingress_session_url(session_id: str) -> str | None:
    """URL from ``INGRESS_LOGGING_URL`` / ``INGRESS_LOGGING_BASE_URL`` (else ConfigError)."""
    return build_session_url(session_id)


@hookimpl(trylast=True)
def ingress_diagnostic(level: Level, event: str, data: DiagnosticData) -> None:
    """Log the event and append it to the diagnostics file, if configured."""
    write_diagnostic(level, event, data)
