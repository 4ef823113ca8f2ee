"""httpx drivers for the session-ingress protocol: blocking and asyncio.

Both are thin: requests out, replies in, waits honoured. What a reply means
is decided once, in ``ingress_logging.protocol``.
"""

from __future__ import annotations

from ._async import AsyncSessionIngressClient
from ._base import Request
from ._common import PendingAppend, check_url, describe_transport_error
from ._sync import SessionIngressClient

__all__ = [
    "AsyncSessionIngressClient",
    "PendingAppend",
    "Request",
    "SessionIngressClient",
    "check_url",
    "describe_transport_error",
]
