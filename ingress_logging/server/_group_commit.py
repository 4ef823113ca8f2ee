"""Group commit: the appends that arrive in one turn of the event loop share one transaction.

Requests on different connections (and pipelined requests parsed together)
become ready in the same loop turn; each hands its append to the
:class:`GroupCommit` of its loop with an :class:`AppendWaiter` (a future to
await, or the connection's own reply callback for the common append). At the end of the turn the
pending appends go to the store as one ``append_batch``: one transaction,
each append still with its own compare-and-set result. A reply is sent only
after the transaction that holds its entry committed.

With a store that runs inline (SQLite) the batch runs on the loop at the end
of the turn. With a pooled store (PostgreSQL) it runs on a worker thread;
appends arriving meanwhile wait for the next batch, which starts when the
previous one finishes, so the batches grow with the database's latency
instead of queueing one transaction per request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from ._metrics import Metrics
from .store import AppendRequest, AppendResult, Store

__all__ = ["MAX_BATCH", "AppendWaiter", "GroupCommit"]

logger = logging.getLogger("ingress_logging.server")

#: Appends per transaction at most (a larger backlog takes several turns).
MAX_BATCH = 256


class AppendWaiter(Protocol):
    """Who learns an append's outcome, on the loop, once its batch committed or failed."""

    def cancelled(self) -> bool:
        """True: the request was abandoned (server stopping); its append is not made."""
        ...

    def settle(self, result: AppendResult | None, exc: BaseException | None) -> None:
        """The append's result, or (``result`` None) what the store raised for its batch."""
        ...


class _FutureWaiter:
    """An :class:`AppendWaiter` that fills a future (for a request that awaits)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[AppendResult]) -> None:
        self.future = future

    def cancelled(self) -> bool:
        return self.future.cancelled()

    def settle(self, result: AppendResult | None, exc: BaseException | None) -> None:
        if self.future.done():  # the request was cancelled (server stopping)
            return
        if result is not None:
            self.future.set_result(result)
        elif isinstance(exc, asyncio.CancelledError):  # the loop is closing
            self.future.cancel()
        else:
            assert exc is not None
            self.future.set_exception(exc)


class GroupCommit:
    """The appends waiting for the next batch of one event loop (its single owner)."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._pending: list[tuple[AppendRequest, AppendWaiter]] = []
        self._scheduled = False
        self._running = False
        self._idle: list[asyncio.Future[None]] = []

    def submit(self, request: AppendRequest) -> asyncio.Future[AppendResult]:
        """Queue ``request`` for the next batch (call on the loop); the future
        holds its result, or what the store raised for that batch."""
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self.enqueue(request, _FutureWaiter(future))
        return future

    def enqueue(self, request: AppendRequest, waiter: AppendWaiter) -> None:
        """Queue ``request`` for the next batch (call on the loop); ``waiter``
        is settled on the loop when its batch is over."""
        self._pending.append((request, waiter))
        if not self._scheduled and not self._running:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def drained(self) -> None:
        """Return once no append is queued or in a batch (the server stopping
        waits for it: the common append has no task of its own to wait for)."""
        while self._pending or self._scheduled or self._running:
            idle = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle

    def _wake_idle(self) -> None:
        if self._pending or self._scheduled or self._running:
            return
        idle, self._idle = self._idle, []
        for future in idle:
            if not future.done():
                future.set_result(None)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        batch = [(request, waiter) for request, waiter in batch if not waiter.cancelled()]
        if batch:
            self._metrics.batch(len(batch))
            if self._store.concurrent:
                self._start_on_thread(batch)
            else:
                try:
                    results = self._store.append_batch([request for request, _ in batch])
                except Exception as exc:
                    _settle(batch, None, exc)
                else:
                    _settle(batch, results, None)
        if self._pending and not self._running and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        if self._idle:
            self._wake_idle()

    def _start_on_thread(self, batch: list[tuple[AppendRequest, AppendWaiter]]) -> None:
        loop = asyncio.get_running_loop()
        self._running = True
        done = loop.run_in_executor(
            None, self._store.append_batch, [request for request, _ in batch]
        )

        def finished(task: asyncio.Future[list[AppendResult]]) -> None:
            self._running = False
            if task.cancelled():  # the loop is closing
                _settle(batch, None, asyncio.CancelledError())
            else:
                exc = task.exception()
                _settle(batch, None if exc is not None else task.result(), exc)
            if self._pending and not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush)
            if self._idle:
                self._wake_idle()

        done.add_done_callback(finished)


def _settle(
    batch: list[tuple[AppendRequest, AppendWaiter]],
    results: list[AppendResult] | None,
    exc: BaseException | None,
) -> None:
    for index, (_, waiter) in enumerate(batch):
        try:
            if results is not None:
                waiter.settle(results[index], None)
            else:
                waiter.settle(None, exc)
        except Exception:  # one reply that fails must not hold back the others
            logger.exception("ingress server: answering an append failed")
