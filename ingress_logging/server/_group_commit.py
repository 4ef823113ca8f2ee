"""Group commit: the appends that arrive in one turn of the event loop share one transaction.

Requests on different connections (and pipelined requests parsed together)
become ready in the same loop turn; each hands its append to the
:class:`GroupCommit` of its loop and waits. At the end of the turn the
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

from ._metrics import Metrics
from .store import AppendRequest, AppendResult, Store

__all__ = ["MAX_BATCH", "GroupCommit"]

#: Appends per transaction at most (a larger backlog takes several turns).
MAX_BATCH = 256


class GroupCommit:
    """The appends waiting for the next batch of one event loop (its single owner)."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._pending: list[tuple[AppendRequest, asyncio.Future[AppendResult]]] = []
        self._scheduled = False
        self._running = False

    def submit(self, request: AppendRequest) -> asyncio.Future[AppendResult]:
        """Queue ``request`` for the next batch (call on the loop); the future
        holds its result, or what the store raised for that batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._pending.append((request, future))
        if not self._scheduled and not self._running:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        batch = [(request, future) for request, future in batch if not future.cancelled()]
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

    def _start_on_thread(
        self, batch: list[tuple[AppendRequest, asyncio.Future[AppendResult]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        self._running = True
        done = loop.run_in_executor(
            None, self._store.append_batch, [request for request, _ in batch]
        )

        def finished(task: asyncio.Future[list[AppendResult]]) -> None:
            self._running = False
            if task.cancelled():  # the loop is closing
                for _, future in batch:
                    future.cancel()
            else:
                exc = task.exception()
                _settle(batch, None if exc is not None else task.result(), exc)
            if self._pending and not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush)

        done.add_done_callback(finished)


def _settle(
    batch: list[tuple[AppendRequest, asyncio.Future[AppendResult]]],
    results: list[AppendResult] | None,
    exc: BaseException | None,
) -> None:
    for index, (_, future) in enumerate(batch):
        if future.done():  # the request was cancelled (server stopping)
            continue
        if results is not None:
            future.set_result(results[index])
        else:
            assert exc is not None
            future.set_exception(exc)
