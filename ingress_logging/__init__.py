"""ingress_logging: ship log records, OpenTelemetry logs and agent transcripts
into session-ingress - complete, in order, exactly once, never slowing the app.

Layers (data flows one way, top to bottom)::

    front doors   handler.IngressHandler, otel exporters, cli
    entries       entries/ (record -> transcript entry, safe orjson)
    delivery      delivery/ (one engine: bounded queue, per-session order)
    protocol      protocol/ (sans-I/O decisions: what happens after a reply)
    transport     client/ (httpx drivers: SessionIngressClient, Async...)

Public names are imported lazily so that ``import ingress_logging`` stays cheap
(and does not pull in OpenTelemetry's SDK or the server).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from . import _notices  # noqa: F401 - its exit hook must be registered before any engine's
from .errors import (
    ConfigError,
    IngressLoggingError,
    InsecureTransportError,
    InvalidResponseError,
    InvalidSessionIdError,
    InvalidURLError,
    SessionExpiredError,
    SpoolLockedError,
)

# A library does not decide where its log records go (logging HOWTO): without this,
# logging's last-resort handler would print every failed attempt to stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .client import AsyncSessionIngressClient, SessionIngressClient
    from .delivery import DeliveryEngine
    from .entries import session
    from .handler import IngressHandler
    from .hookspecs import hookimpl
    from .protocol import RetryPolicy

__all__ = [
    "AsyncSessionIngressClient",
    "ConfigError",
    "DeliveryEngine",
    "IngressHandler",
    "IngressLoggingError",
    "InsecureTransportError",
    "InvalidResponseError",
    "InvalidSessionIdError",
    "InvalidURLError",
    "RetryPolicy",
    "SessionExpiredError",
    "SessionIngressClient",
    "SpoolLockedError",
    "__version__",
    "hookimpl",
    "session",
]

_LAZY: dict[str, str] = {
    "SessionIngressClient": ".client",
    "AsyncSessionIngressClient": ".client",
    "RetryPolicy": ".protocol",
    "DeliveryEngine": ".delivery",
    "IngressHandler": ".handler",
    "session": ".entries",
    "hookimpl": ".hookspecs",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("ingress-logging")
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ingress_logging' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value
