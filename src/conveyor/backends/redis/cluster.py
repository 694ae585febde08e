"""`ClusterBackend`: one store spread over a Redis Cluster as several shard stores
(``redis+cluster://host:7000,host:7001/?shards=3``).

Each shard is an ordinary `RedisBackend` on its own hash tag (see `shards` for the layout
and which shard holds what); this class routes the core verbs to them:

* ``enqueue`` sends each job to its queue's shard (one call per shard, concurrently); a
  batch is atomic per shard, not across shards.
* ``claim`` asks the shards that hold the routing's queues, starting with a different
  one each call, until ``limit`` jobs are leased; with ``wait`` and nothing ready, it
  waits on all of them at once and keeps what the first to find work leased (how, and
  what is given back when a caller is cancelled: `cluster_claiming`).
* ``extend`` / ``complete`` / ``fail`` / ``release`` / ``defer`` (and progress reports)
  go to the shard the lease token names, without a lookup.
* ``get`` asks every shard at once (job ids are the caller's, so they cannot name a shard).
* ``recover`` sweeps every shard.

The capabilities (`cluster_parts`) route or fan out the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from conveyor.backends.base import Backend, RecoveryReport
from conveyor.backends.opening import SharedOpen
from conveyor.backends.redis.backend import RedisBackend
from conveyor.backends.redis.cluster_claiming import ClusterClaims
from conveyor.backends.redis.cluster_parts import (
    ClusterAdmin,
    ClusterLimits,
    ClusterProgress,
    ClusterScheduling,
    ClusterTelemetry,
    Shards,
)
from conveyor.backends.redis.connection import translated
from conveyor.backends.redis.shards import Layout, parse_layout
from conveyor.backends.redis.urls import redact_url_multi
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import BackendError, ConfigError
from conveyor.job import EnqueueResult, Failure, JobRecord, Lease, NewJob, Routing

T = TypeVar("T")

log = logging.getLogger("conveyor.backend.redis")


class ClusterBackend(Backend):
    """Jobs in a Redis Cluster, spread over ``?shards=N`` shard stores (see the module)."""

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        layout = parse_layout(url)
        self._shards = Shards(layout, tuple(RedisBackend(u, clock=clock) for u in layout.urls))
        super().__init__(
            limits=ClusterLimits(self._shards),
            scheduling=ClusterScheduling(self._shards),
            admin=ClusterAdmin(self._shards),
            telemetry=ClusterTelemetry(self._shards),
            progress=ClusterProgress(self._shards),
        )
        self._claims = ClusterClaims(self._shards, self)
        self._opened = False
        self._opening = SharedOpen()

    @property
    def layout(self) -> Layout:
        """The shard count, the shards' prefixes and which shard holds what."""
        return self._shards.layout

    @property
    def stores(self) -> tuple[RedisBackend, ...]:
        """The shard stores, shard 0 first."""
        return self._shards.stores

    def clone(self) -> ClusterBackend:
        """A new handle (its own clients) on the same store and clock."""
        return ClusterBackend(self.url, clock=self.clock)

    def __repr__(self) -> str:
        return f"ClusterBackend({redact_url_multi(self.url)!r})"

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        """Check the recorded shard count, then open every shard store (once: callers
        that open the handle at the same time share the one opening)."""
        if not self._opened:
            await self._opening.run(self._open)
            self._opened = True

    async def _open(self) -> None:
        await self._check_count()
        await asyncio.gather(*(store.open() for store in self.stores))

    async def _check_count(self) -> None:
        layout, first = self.layout, self.stores[0]
        client = first.connection.client()
        with translated(first.target):
            await client.hsetnx(layout.meta_key, "shards", layout.count)
            recorded = await client.hget(layout.meta_key, "shards")
        if recorded is None:  # deleted between the two calls: recorded at the next open
            return
        text = recorded.decode(errors="replace") if isinstance(recorded, bytes) else recorded
        if not (text.isascii() and text.isdecimal()):
            raise ConfigError(
                f"the shard count recorded for the store {layout.prefix!r} on this Redis "
                f"Cluster ({layout.meta_key} field shards) is {text!r}, not a number: set it "
                "back to the number of shards the store was created with (HSET "
                f"{layout.meta_key} shards N)"
            )
        if int(text) != layout.count:
            raise ConfigError(
                f"the store {layout.prefix!r} on this Redis Cluster was created with "
                f"shards={int(text)}, and the URL says shards={layout.count}: use "
                f"?shards={int(text)} (another count would move queues to other shards "
                "and strand their jobs), or a new ?prefix= for a new store"
            )

    async def close(self) -> None:
        """Close every shard store; safe to call twice."""
        self._opened = False
        self._opening.reset()
        await asyncio.gather(*(store.close() for store in self.stores), return_exceptions=True)

    # -- producing -----------------------------------------------------------------------
    def _by_shard(self, jobs: Sequence[NewJob]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(self.layout.of_queue(job.queue), []).append(i)
        return groups

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store each job on its queue's shard, in order within each shard.

        Every shard's part is tried to its end; if any failed, the first error is raised
        after the others are stored (enqueueing the batch again stores none twice).
        """
        groups = self._by_shard(jobs)
        replies = await asyncio.gather(
            *(self.stores[s].enqueue([jobs[i] for i in idx]) for s, idx in groups.items()),
            return_exceptions=True,
        )
        return _reassemble(len(jobs), groups.values(), _or_raise(replies))

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """`enqueue` for code without an event loop, one shard after another (each tried,
        as `enqueue` does)."""
        groups = self._by_shard(jobs)
        replies: list[list[EnqueueResult] | BaseException] = []
        for s, idx in groups.items():
            try:
                replies.append(self.stores[s].enqueue_sync([jobs[i] for i in idx]))
            except Exception as exc:  # noqa: BLE001 - raised once every shard was tried
                replies.append(exc)
        return _reassemble(len(jobs), groups.values(), _or_raise(replies))

    # -- working -------------------------------------------------------------------------
    async def claim(
        self,
        worker_id: str,
        routing: Routing,
        limit: int,
        lease_seconds: float,
        *,
        wait: float = 0.0,
    ) -> list[JobRecord]:
        """Lease up to ``limit`` jobs from the routing's shards (see `cluster_claiming`)."""
        return await self._claims.claim(worker_id, routing, limit, lease_seconds, wait=wait)

    def _tag(self, shard: int, job: JobRecord) -> JobRecord:
        return self._shards.tagged(shard, job)

    def _route(self, lease: Lease) -> tuple[RedisBackend, Lease]:
        """The shard store a lease's token names, and the lease as that store knows it. A
        token that names no shard goes to shard 0 as it is, which fences (and counts) it."""
        return self._shards.route(lease)

    async def extend(self, leases: Sequence[Lease], lease_seconds: float) -> list[bool]:
        """Push held leases forward, each on its shard; ``False`` for each lost one."""
        groups: dict[int, list[int]] = {}
        routed = [self._route(lease) for lease in leases]
        for i, (store, _) in enumerate(routed):
            groups.setdefault(self.stores.index(store), []).append(i)
        replies = await asyncio.gather(
            *(
                self.stores[s].extend([routed[i][1] for i in idx], lease_seconds)
                for s, idx in groups.items()
            )
        )
        return _reassemble(len(leases), groups.values(), replies)

    async def complete(self, lease: Lease, result: bytes | None) -> bool:
        """Mark the job succeeded on its shard; ``False`` if the lease was lost."""
        store, inner = self._route(lease)
        return await store.complete(inner, result)

    async def fail(self, lease: Lease, failure: Failure) -> bool:
        """Retry or dead-letter the job on its shard; ``False`` if the lease was lost."""
        store, inner = self._route(lease)
        return await store.fail(inner, failure)

    async def release(self, lease: Lease) -> bool:
        """Back to ready at once on its shard; ``False`` if the lease was lost."""
        store, inner = self._route(lease)
        return await store.release(inner)

    async def defer(
        self, lease: Lease, delay: float, headers: dict[str, Any] | None = None
    ) -> bool:
        """Back to wait on its shard without using an attempt; ``False`` if fenced."""
        store, inner = self._route(lease)
        return await store.defer(inner, delay, headers)

    async def recover(self, max_recoveries: int) -> RecoveryReport:
        """Sweep expired leases on every shard; a shard that is down is skipped (and
        logged) while the others are swept, and its error raised only if none could be."""
        replies = await asyncio.gather(
            *(s.recover(max_recoveries) for s in self.stores), return_exceptions=True
        )
        reports = [r for r in replies if isinstance(r, RecoveryReport)]
        errors = [r for r in replies if not isinstance(r, RecoveryReport)]
        if errors and (not reports or not all(isinstance(e, BackendError) for e in errors)):
            raise errors[0]
        for error in errors:
            log.warning("recovering leases on a shard of %s failed: %s", self, error)
        return RecoveryReport(sum(r.recovered for r in reports), sum(r.dead for r in reports))

    # -- reading -------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord | None:
        """One job by id: every shard is asked at once."""
        found = await asyncio.gather(*(store.get(job_id) for store in self.stores))
        return _first(self._tag(s, job) for s, job in enumerate(found) if job is not None)

    def get_sync(self, job_id: str) -> JobRecord | None:
        """`get` for code without an event loop, one shard after another."""
        for s, store in enumerate(self.stores):
            job = store.get_sync(job_id)
            if job is not None:
                return self._tag(s, job)
        return None


def _first(records: Any) -> JobRecord | None:
    return next(iter(records), None)


def _or_raise(replies: Sequence[T | BaseException]) -> list[T]:
    """The shards' replies, or the first error among them (a cancellation first)."""
    errors = [r for r in replies if isinstance(r, BaseException)]
    if errors:
        raise next((e for e in errors if isinstance(e, asyncio.CancelledError)), errors[0])
    return [r for r in replies if not isinstance(r, BaseException)]


def _reassemble(total: int, groups: Any, replies: Sequence[Sequence[T]]) -> list[T]:
    """Put per-shard replies back in the callers' order (``groups`` holds the indexes)."""
    out: list[Any] = [None] * total
    for idx, reply in zip(groups, replies, strict=True):
        for i, value in zip(idx, reply, strict=True):
            out[i] = value
    return out
