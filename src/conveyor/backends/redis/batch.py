"""Coalescing: calls made while a round trip is in flight share the next one.

A worker finishing many jobs at once (or a web app enqueueing from many coroutines) sends
one script call for all of them instead of one each; a lone call goes out at once, on the
next turn of the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Most calls folded into one round trip; keeps each script call short.
MAX_BATCH = 500


class Batcher(Generic[T, R]):
    """Queues items and hands them to ``flush`` in batches, one batch in flight at a time."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._flush = flush
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its own result (or the batch's error)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (the old one is gone): start afresh.
            self._loop, self._pending, self._task = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                results = await self._flush([item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - every caller in the batch sees it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
