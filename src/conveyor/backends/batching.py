"""Coalescing: calls made while a round trip is in flight share the next one.

A worker finishing many short jobs acks several at nearly the same time, and a web app may
enqueue from many coroutines at once. Each call on its own would be a round trip (and, on a
database, a commit with its own WAL flush); instead the first call starts a flush and every
call that arrives while that flush is in flight rides the next one. Nobody waits for a
timer: a lone call goes out at once, on the next turn of the event loop, and batches form
only under load, where they pay.

Used by the stores for acks (`complete`) and for whatever else they coalesce.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Most calls folded into one round trip; keeps each statement or script call short.
MAX_BATCH = 500


class Batcher(Generic[T, R]):
    """Queues items and hands them to ``flush`` in batches, one batch in flight at a time.

    ``flush`` gets up to `MAX_BATCH` items and returns one result per item, in order; each
    caller gets its own. An error from ``flush`` reaches every caller of that batch (later
    batches still go out); a cancelled flush (the event loop shutting down) cancels the
    callers still waiting and goes on cancelling. The batcher belongs to one event loop at a
    time: used from a new loop (a later ``asyncio.run``), it starts afresh.
    """

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[list[R]]], *, name: str = "conveyor-batch"
    ) -> None:
        self._flush = flush
        self._name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its own result (or its batch's error)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # What was queued on an earlier loop died with it: its callers are gone.
            self._loop, self._pending, self._task = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name=self._name)
        return await future

    async def close(self) -> None:
        """Wait until every item already queued on this event loop has been flushed."""
        task = self._task
        if task is None or task.done() or self._loop is not asyncio.get_running_loop():
            return
        await asyncio.gather(task, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                results = await self._flush([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"a batch flush returned {len(results)} results for {len(batch)} items"
                    )
            except asyncio.CancelledError:
                # Nothing will flush what is queued either: its callers must not wait on.
                queued, self._pending = self._pending, []
                for _, future in batch + queued:
                    future.cancel()
                raise
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise  # KeyboardInterrupt, SystemExit: the callers got it too
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
