"""One process of the SQLite contention test: enqueue, claim and complete on a shared file.

Kept free of pytest so `multiprocessing`'s spawn start method can import it cheaply.
"""

from __future__ import annotations

import asyncio
import time

from conveyor.backends.sqlite import SqliteBackend
from conveyor.job import Lease, NewJob, Priority, Routing, State

ALL = Routing()


async def _finished(backend: SqliteBackend) -> int:
    return sum(s.counts.get(State.SUCCEEDED, 0) for s in await backend.admin.stats())


async def _work(
    backend: SqliteBackend, name: str, claimed: list[str], limit: int, wait: float = 0.0
) -> None:
    for job in await backend.claim(name, ALL, limit, 120.0, wait=wait):
        claimed.append(job.id)
        if not await backend.complete(Lease(job.id, job.lease_token or ""), b"1"):
            raise AssertionError(f"{name} lost the lease of {job.id}")


async def _main(url: str, name: str, batches: int, total: int, deadline: float) -> list[str]:
    backend = SqliteBackend(url)
    await backend.open()
    claimed: list[str] = []
    try:
        for i in range(batches):
            batch = [
                NewJob(
                    task="t",
                    queue=f"q{i % 3}",
                    priority=Priority(i % 3),
                    payload=b"[]",
                    max_retries=0,
                    timeout=5.0,
                )
                for _ in range(10)
            ]
            if i % 4 == 1:
                for one in batch:  # one job and no unique key: a single autocommit INSERT
                    await asyncio.to_thread(backend.enqueue_sync, [one])
            elif i % 2:
                await asyncio.to_thread(backend.enqueue_sync, batch)
            else:
                await backend.enqueue(batch)
            await _work(backend, name, claimed, 5)
        while await _finished(backend) < total:
            if time.time() > deadline:
                raise TimeoutError(f"{name}: jobs still unfinished at the deadline")
            await _work(backend, name, claimed, 5, wait=0.05)
    finally:
        await backend.close()
    return claimed


def contend(url: str, name: str, batches: int, total: int, deadline: float) -> list[str]:
    """Run one contender; return the ids it claimed (each completed at once)."""
    return asyncio.run(_main(url, name, batches, total, deadline))
