"""Where the OAuth access token and organization uuid come from.

The host owns the OAuth login and refresh; this module only reads what the
host left for us - environment variables, or a JSON file the host rewrites
when it refreshes. The file is re-read when its mtime, size or inode changes,
so a refreshed token is used on the next request.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ingress_logging.errors import ConfigError

__all__ = [
    "DEFAULT_ANTHROPIC_VERSION",
    "ENV_ANTHROPIC_VERSION",
    "ENV_FILE",
    "ENV_ORG_UUID",
    "ENV_TOKEN",
    "Credentials",
    "current_credentials",
]

ENV_TOKEN: Final = "INGRESS_LOGGING_OAUTH_TOKEN"
ENV_ORG_UUID: Final = "INGRESS_LOGGING_OAUTH_ORG_UUID"
ENV_FILE: Final = "INGRESS_LOGGING_OAUTH_FILE"
ENV_ANTHROPIC_VERSION: Final = "INGRESS_LOGGING_ANTHROPIC_VERSION"
DEFAULT_ANTHROPIC_VERSION: Final = "2023-06-01"


@dataclass(frozen=True)
class Credentials:
    """What the host supplied; ``repr`` never shows the token."""

    access_token: str | None
    organization_uuid: str | None

    def __repr__(self) -> str:
        token = "unset" if self.access_token is None else "<set>"
        return f"Credentials(access_token={token}, organization_uuid={self.organization_uuid!r})"


_NONE: Final = Credentials(None, None)


class _FileCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[str, int, int, int] | None = None
        self._value: Credentials = _NONE
        self.reads = 0

    def get(self, path: str) -> Credentials:
        try:
            st = os.stat(path)
        except OSError:
            raise ConfigError(f"{ENV_FILE} names a file that can't be read") from None
        stamp = (path, st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp == self._stamp:
                return self._value
            try:
                with open(path, encoding="utf-8") as f:
                    raw = json.load(f)
            except (OSError, ValueError):
                # Never quote the content: it holds a token.
                raise ConfigError(f"{ENV_FILE} must hold a JSON object") from None
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{ENV_FILE} must hold a JSON object")
            token, org = raw.get("access_token"), raw.get("organization_uuid")
            if not isinstance(token, str | None) or not isinstance(org, str | None):
                raise ConfigError(f"{ENV_FILE}: access_token and organization_uuid must be strings")
            self.reads += 1
            self._value = Credentials(token.strip() or None if token else None, org)
            self._stamp = stamp
            return self._value


file_cache: Final = _FileCache()


def _check_org(org: str | None, source: str) -> str | None:
    if org is None or not org.strip():
        return None
    try:
        return str(uuid.UUID(org.strip()))
    except ValueError:
        raise ConfigError(f"{source}: organization uuid is not a UUID") from None


def current_credentials() -> Credentials:
    """Environment first, field by field, then the file; both optional."""
    token = os.environ.get(ENV_TOKEN, "").strip() or None
    org = _check_org(os.environ.get(ENV_ORG_UUID), ENV_ORG_UUID)
    path = os.environ.get(ENV_FILE, "")
    if path and (token is None or org is None):
        from_file = file_cache.get(path)
        token = token or from_file.access_token
        org = org or _check_org(from_file.organization_uuid, ENV_FILE)
    return Credentials(token, org)


def anthropic_version() -> str:
    """The ``anthropic-version`` header value (overridable for new API versions)."""
    return os.environ.get(ENV_ANTHROPIC_VERSION, "").strip() or DEFAULT_ANTHROPIC_VERSION
