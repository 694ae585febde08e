"""Ordered queues: take from the first queue that has a ready job (Laravel's ``--queue``).

``conveyor worker --queue high,low`` (or ``WORKER_QUEUES=high,low`` with
``WORKER_QUEUES_ORDERED=true``) serves its queues in the order given, as Laravel's
``queue:work --queue=high,low``, RQ's ``rq worker high low`` and Sidekiq's strict mode do:
a ``low`` job is claimed only while ``high`` has none ready. Within one queue, the job's own
priority still orders work. ``--queues`` alone stays a filter, with priority across queues.

This works on every store without store support: each claim asks the store queue by queue,
in order, each for the slots still free. With nothing ready anywhere, one claim that waits
covers every queue (the store's own wake-up) and takes one job, so an idle ordered worker
costs what any worker does; a job of a later queue that arrives in the same instant as one
of an earlier queue may then be taken first, which is the only exception to the order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.job import JobRecord, Routing


class Claim(Protocol):
    """`Backend.claim`'s signature: what the fetcher calls."""

    async def __call__(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]: ...


def claim_for(backend: Backend, routing: Routing, *, ordered: bool) -> Claim:
    """The claim a worker's fetcher uses: the store's own, or queue by queue in order."""
    if not ordered or routing.queues is None or len(routing.queues) < 2:
        return backend.claim
    return InOrder(backend).claim


class InOrder:
    """Claims from each queue of the routing in turn, for the slots still free."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]:
        """Up to ``limit`` jobs, earlier queues first.

        With ``wait`` (the fetcher asks after a claim found nothing) it waits on every queue
        for one job: the store's cancel-safe wait, and the next claim, in order again, takes
        whatever arrived with it.
        """
        assert routing.queues is not None
        if wait > 0:
            return await self.backend.claim(worker_id, routing, 1, lease_seconds, wait=wait)
        jobs: list[JobRecord] = []
        for queue in routing.queues:
            if len(jobs) >= limit:
                break
            one = replace(routing, queues=(queue,))
            jobs += await self.backend.claim(worker_id, one, limit - len(jobs), lease_seconds)
        return jobs
