"""The sans-I/O protocol core: every decision of the seed, with no sockets or clocks.

The blocking client, the asyncio client and the delivery engine are drivers
around these objects; none of them decides anything about the protocol on
its own. See ``_append.AppendExchange`` for the driver loop.
"""

from __future__ import annotations

from ._append import (
    PERMANENT_STATUSES,
    Action,
    AppendExchange,
    AppendOutcome,
    Done,
    Emit,
    Put,
    Refetch,
    Wait,
    find_last_uuid,
)
from ._read import (
    TELEPORT_MAX_PAGES,
    TELEPORT_PAGE_LIMIT,
    TeleportPager,
    head_from_read,
    interpret_read,
    interpret_read_error,
    read_without_token,
)
from ._retry import RetryPolicy, parse_retry_after
from ._window import DEFAULT_WINDOW, AppendWindow, Send, reorder_shown

__all__ = [
    "DEFAULT_WINDOW",
    "PERMANENT_STATUSES",
    "TELEPORT_MAX_PAGES",
    "TELEPORT_PAGE_LIMIT",
    "Action",
    "AppendExchange",
    "AppendOutcome",
    "AppendWindow",
    "Done",
    "Emit",
    "Put",
    "Refetch",
    "RetryPolicy",
    "Send",
    "TeleportPager",
    "Wait",
    "find_last_uuid",
    "head_from_read",
    "interpret_read",
    "interpret_read_error",
    "parse_retry_after",
    "read_without_token",
    "reorder_shown",
]
