"""The seam between the core and whatever the host application plugs in.

The client and the delivery engine never call pluggy directly: they talk to a
``Host``. ``plugins.PluginHost`` is the real implementation (pluggy hooks,
entry points, defaults). Keeping this a Protocol keeps the protocol core and
the drivers free of plugin machinery and lets tests pass a tiny host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .diagnostics import DiagnosticData, Level

__all__ = ["Host"]


class Host(Protocol):
    """What the client and the engine need from the host application."""

    def auth_token(self, session_id: str) -> str | None:
        """Bearer token for this session, resolved per request (tokens rotate)."""

    def session_url(self, session_id: str) -> str:
        """Append/read URL for this session (already validated and percent-encoded)."""

    def request_headers(self, session_id: str) -> Mapping[str, str]:
        """Extra headers merged into every request for this session."""

    def diagnostic(self, level: Level, event: str, data: DiagnosticData) -> None:
        """Deliver one diagnostics event to every sink; never raises."""

    def prepare_entry(self, entry: dict[str, Any], record: object) -> dict[str, Any] | None:
        """Redact or enrich an entry before it is queued; None drops it (counted)."""
