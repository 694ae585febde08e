"""How a ``redis+cluster://`` store claims: across the shards that hold a routing's queues.

* A claim asks those shards one after another, starting with a different one each call,
  until ``limit`` jobs are leased; a shard that is down is skipped (and logged) while the
  others' work still runs, and its error raised only when no shard gave anything.
* With ``wait`` and nothing ready, it waits on all of them at once and keeps what the first
  to find work leased; the other waits end, and what they leased meanwhile (or what is over
  ``limit``) is given back.
* A caller cancelled at any point gets nothing, and every job leased for it is given back
  before the cancellation goes on, as `Backend.claim` promises: no job stays leased to
  nobody until its lease expires.

Priority and run order hold within each shard, so within each queue; between queues on
different shards a claim takes from each shard in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from conveyor.backends.base import CANCEL_GRACE, Backend, release_claimed
from conveyor.backends.redis.cluster_parts import Shards
from conveyor.errors import BackendError
from conveyor.job import JobRecord, Lease, Routing

log = logging.getLogger("conveyor.backend.redis")


class ClusterClaims:
    """The claiming part of a cluster handle: its shards, and the handle itself to give
    leased jobs back through (its ``release`` finds each job's shard by the lease token)."""

    def __init__(self, shards: Shards, backend: Backend) -> None:
        self._shards = shards
        self._backend = backend
        #: Which shard the next claim starts with, so no shard is always asked first.
        self._turn = itertools.count()

    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]:
        """`ClusterBackend.claim`: up to ``limit`` jobs from the routing's shards."""
        # A routing that matches nothing still waits like a claim that finds nothing.
        shards = self._shards.layout.for_routing(routing) or (0,)
        start = next(self._turn) % len(shards)
        order = shards[start:] + shards[:start]
        # Shielded: a caller cancelled in flight gets nothing, and what was leased for it
        # is released before the cancellation goes on.
        first = asyncio.ensure_future(
            self._claim_round(order, worker_id, routing, limit, lease_seconds)
        )
        try:
            got = await asyncio.shield(first)
        except asyncio.CancelledError:
            await release_claimed(self._backend, first)
            raise
        if got or wait <= 0 or limit <= 0:
            return got
        return await self._claim_waiting(order, worker_id, routing, limit, lease_seconds, wait)

    async def _claim_round(
        self,
        order: Sequence[int],
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
    ) -> list[JobRecord]:
        """One claim on each shard in ``order`` until ``limit`` jobs are leased."""
        got: list[JobRecord] = []
        failed: BackendError | None = None
        for s in order:
            if len(got) >= limit:
                break
            try:
                jobs = await self._shards.stores[s].claim(
                    worker_id, routing, limit - len(got), lease_seconds
                )
            except BackendError as exc:  # one shard down: the others' work still runs
                failed = failed or exc
                log.warning("claim on shard %d of %s failed: %s", s, self._backend, exc)
                continue
            got += self._tagged(s, jobs)
        if failed is not None and not got:
            raise failed
        return got

    async def _claim_waiting(
        self,
        shards: Sequence[int],
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        wait: float,
    ) -> list[JobRecord]:
        """Wait on every shard at once; the first claim that leases work ends the others."""
        tasks = {
            asyncio.create_task(
                self._shards.stores[s].claim(worker_id, routing, limit, lease_seconds, wait=wait)
            ): s
            for s in shards
        }
        got: list[JobRecord] = []
        pending = set(tasks)
        try:
            while pending and not got:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                got += self._outcomes(tasks, done)
            for task in pending:  # the first found work: the other waits end
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            got += self._outcomes(tasks, pending)
        except BaseException:
            await self._give_back(tasks, got)
            raise
        kept, extra = got[:limit], got[limit:]
        try:  # shards that found work at once leased more than asked for: the rest back
            await self._release_jobs(extra)
        except BaseException:  # cancelled meanwhile: what was kept goes back too
            await self._release_jobs(kept)
            raise
        return kept

    async def _release_jobs(self, jobs: Sequence[JobRecord]) -> None:
        """Give back leased (tagged) ``jobs``, all at once; shielded, so a caller
        cancelled meanwhile still gives back every one."""
        if jobs:
            await asyncio.shield(
                asyncio.gather(
                    *(self._backend.release(Lease(j.id, j.lease_token or "")) for j in jobs),
                    return_exceptions=True,
                )
            )

    async def _give_back(
        self, tasks: dict[asyncio.Task[list[JobRecord]], int], got: list[JobRecord]
    ) -> None:
        """The caller was cancelled (or a shard failed): end every shard's wait and
        release what was leased, so no job stays leased to nobody. A shard's claim that is
        cancelled releases its own jobs; those that finished first are released here."""
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.wait(tasks), CANCEL_GRACE)
        leased = list(got)
        for task, shard in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                leased += [j for j in self._tagged(shard, task.result()) if j not in got]
        with contextlib.suppress(BaseException):
            await self._release_jobs(leased)

    def _outcomes(
        self, tasks: dict[asyncio.Task[list[JobRecord]], int], done: set[Any]
    ) -> list[JobRecord]:
        """What the finished shard claims leased. A cancelled one leased nothing (it gave
        back what it had). A failed one is raised unless another found work: that work is
        kept, and the failed claim's shard released what it had leased."""
        out: list[JobRecord] = []
        errors: list[BaseException] = []
        for task in done:
            if task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                errors.append(error)
            else:
                out += self._tagged(tasks[task], task.result())
        if errors and not out:
            raise errors[0]
        return out

    def _tagged(self, shard: int, jobs: list[JobRecord]) -> list[JobRecord]:
        return [self._shards.tagged(shard, job) for job in jobs]
