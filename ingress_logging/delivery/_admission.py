"""The memory cap and the overflow policy: what is charged, what gets in.

Queued plus in-flight entries are capped in entries and in bytes (an
estimate at submit, corrected once the entry is serialised). When full,
``drop_newest`` refuses, ``drop_oldest`` names the oldest queued entry to
evict (the scheduler evicts it) and ``block`` waits on the scheduler's
``space`` condition. Owned by the scheduler and used only under its lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from ._session import Item, ItemState
from ._types import DROP_BLOCK_TIMEOUT, DROP_QUEUE_FULL, DROP_TOO_LARGE, OverflowPolicy

__all__ = ["Admission"]


class Admission:
    """The caps, what is charged against them, and ``drop_oldest``'s order."""

    def __init__(
        self, *, max_entries: int, max_bytes: int, overflow: OverflowPolicy, block_timeout: float
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.reset()

    def reset(self) -> None:
        """Nothing charged (construction, and a forked child)."""
        self.entries = 0  # queued + in flight
        self.bytes = 0
        self.space_waiters = 0  # ``block`` submits waiting for room
        self._fifo: deque[Item] = deque()  # submission order, for drop_oldest only
        self.evicted_keys: list[object] = []  # spool rows of evicted entries, to delete

    def fits(self, size: int) -> bool:
        return self.entries < self.max_entries and self.bytes + size <= self.max_bytes

    def admit(
        self,
        size: int,
        *,
        may_block: bool,
        space: threading.Condition,
        evict_oldest: Callable[[], bool],
        closed: Callable[[], bool],
    ) -> str | None:
        """Make room for ``size`` bytes; None when it fits, else the drop reason.

        ``space`` is the scheduler's condition, its lock held by the caller.
        """
        if size > self.max_bytes:
            return DROP_TOO_LARGE
        if self.fits(size):
            return None
        if self.overflow == "drop_oldest":
            while not self.fits(size) and evict_oldest():
                pass
            return None if self.fits(size) else DROP_QUEUE_FULL
        if self.overflow == "block" and may_block:
            deadline = time.monotonic() + self.block_timeout
            self.space_waiters += 1
            try:
                while not self.fits(size) and not closed():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    space.wait(left)
            finally:
                self.space_waiters -= 1
            return None if self.fits(size) else DROP_BLOCK_TIMEOUT
        return DROP_QUEUE_FULL

    def charge(self, item: Item) -> None:
        """``item`` was queued."""
        self.entries += 1
        self.bytes += item.size
        if self.overflow == "drop_oldest":
            fifo = self._fifo
            fifo.append(item)
            if len(fifo) > 2 * self.entries + 64:
                self._fifo = deque(i for i in fifo if i.state is ItemState.QUEUED)

    def resize(self, item: Item, size: int) -> None:
        """``item`` serialised to ``size`` bytes: the estimate, corrected."""
        self.bytes += size - item.size
        item.size = size

    def release(self, item: Item) -> None:
        """``item`` finished: it no longer counts."""
        self.entries -= 1
        self.bytes -= item.size

    def oldest_queued(self) -> Item | None:
        """The oldest entry still queued (``drop_oldest``'s next victim), taken off the order."""
        fifo = self._fifo
        while fifo:
            item = fifo.popleft()
            if item.state is ItemState.QUEUED:
                return item
        return None
