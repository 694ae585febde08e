"""Group commit for acks: concurrent `complete` calls share one statement and one commit.

A worker running many short jobs finishes several at nearly the same time. Each ack on its
own would be a transaction with its own WAL flush; instead the first call starts a flush and
every call that arrives while that flush is in flight rides the next one. Nobody waits for a
timer: a lone ack goes out at once, and batches form only under load, where they pay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from conveyor.job import Lease

#: The most acks in one statement.
MAX_BATCH = 500


@dataclass(slots=True)
class _Ack:
    lease: Lease
    result: bytes | None
    future: asyncio.Future[bool]


Flush = Callable[[Sequence[tuple[Lease, bytes | None]]], Awaitable[set[tuple[str, str]]]]


class AckBatcher:
    """Collects acks on one event loop and flushes them in batches through ``flush``.

    ``flush`` stores a batch and returns the ``(job id, token)`` pairs whose lease was held;
    each caller learns whether its own lease was.
    """

    def __init__(self, flush: Flush) -> None:
        self._flush = flush
        self._pending: list[_Ack] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, lease: Lease, result: bytes | None) -> bool:
        """Queue one ack and wait for the flush that carries it."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Ack(lease, result, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="conveyor-pg-acks")
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                held = await self._flush([(a.lease, a.result) for a in batch])
            except BaseException as exc:
                cancelled = isinstance(exc, asyncio.CancelledError)
                for ack in batch:
                    if ack.future.done():
                        continue
                    if cancelled:
                        ack.future.cancel()
                    else:
                        ack.future.set_exception(exc)
                if cancelled:
                    raise
                continue
            for ack in batch:
                if not ack.future.done():
                    ack.future.set_result((ack.lease.job_id, ack.lease.token) in held)

    async def close(self) -> None:
        """Wait for acks already queued to be flushed."""
        if self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)
