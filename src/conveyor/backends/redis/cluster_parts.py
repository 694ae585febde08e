"""The capabilities of a ``redis+cluster://`` store, over its shard stores (`Shards`).

Where each one keeps its state, and so where its promises hold (see `shards`):

* `ClusterLimits`: each rate or concurrency key wholly on one shard (``crc32(key) % N``),
  so every limit is as exact as on one Redis; different keys spread over the shards.
* `ClusterScheduling`: the leader lease on shard 0; a tick is recorded on the shard of
  its jobs' queue, together with them in one script, and an entry's last tick is the
  newest any shard recorded, so each tick is still enqueued once.
* `ClusterAdmin`: reads fan out to every shard and are merged (lists newest first by
  ``created_at``, counts summed); changes by job id go to every shard (a job is on one);
  pausing a queue pauses it on every shard.
* `ClusterTelemetry`: the worker registry and the throughput history on shard 0.
* `ClusterProgress`: a report goes to the shard its lease's token names, beside its job.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, replace

from conveyor.backends.capabilities import (
    Admin,
    Limits,
    Progress,
    Scheduling,
    ServerInfo,
    Telemetry,
)
from conveyor.backends.redis import cluster_topology
from conveyor.backends.redis.backend import RedisBackend
from conveyor.backends.redis.connection import translated
from conveyor.backends.redis.shards import Layout
from conveyor.job import (
    EnqueueResult,
    HistoryPoint,
    JobQuery,
    JobRecord,
    Lease,
    NewJob,
    QueueStats,
    State,
    WorkerInfo,
)


@dataclass(frozen=True, slots=True)
class Shards:
    """What the parts of one cluster handle share: the layout and the shard stores."""

    layout: Layout
    stores: tuple[RedisBackend, ...]

    @property
    def first(self) -> RedisBackend:
        """Shard 0, which keeps the store-wide state (leader lease, workers, history)."""
        return self.stores[0]

    def tagged(self, shard: int, job: JobRecord) -> JobRecord:
        """``job`` as the cluster store shows it: its lease token naming its shard."""
        if job.lease_token is None:
            return job
        return replace(job, lease_token=self.layout.token(shard, job.lease_token))

    def route(self, lease: Lease) -> tuple[RedisBackend, Lease]:
        """The shard store a lease's token names, and the lease as that store knows it. A
        token that names no shard goes to shard 0 as it is, where it is fenced."""
        shard, token = self.layout.split_token(lease.token)
        return self.stores[shard or 0], Lease(lease.job_id, token)


class ClusterLimits(Limits):
    """`Limits` with each key on the shard ``crc32(key) % N``."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards

    def _for(self, key: str) -> Limits:
        return self._shards.stores[self._shards.layout.of_key(key)].limits

    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """Take one start from ``key``'s window, on its shard."""
        return await self._for(key).rate_acquire(key, limit, period)

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Hold one of ``key``'s slots, on its shard."""
        return await self._for(key).slot_acquire(key, holder, limit, ttl)

    async def slot_release(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot of ``key``, on its shard."""
        await self._for(key).slot_release(key, holder)


class ClusterScheduling(Scheduling):
    """`Scheduling`: the leader lease on shard 0, ticks beside their jobs."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` (kept on shard 0)."""
        return await self._shards.first.scheduling.acquire_lease(name, owner, ttl)

    async def release_lease(self, name: str, owner: str) -> None:
        """Give up the lease ``name`` if ``owner`` holds it."""
        await self._shards.first.scheduling.release_lease(name, owner)

    async def schedule_state(self, names: Sequence[str]) -> dict[str, float | None]:
        """Each entry's newest tick recorded on any shard."""
        states = await asyncio.gather(
            *(s.scheduling.schedule_state(names) for s in self._shards.stores)
        )
        out: dict[str, float | None] = {}
        for name in names:
            ticks = [t for state in states if (t := state.get(name)) is not None]
            out[name] = max(ticks) if ticks else None
        return out

    async def enqueue_tick(
        self, name: str, tick: float, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult] | None:
        """Record the tick with its jobs on their queue's shard, in one script.

        Jobs of queues on several shards: each shard records the tick with its own jobs,
        so each job is still enqueued once per tick. ``None`` when every shard involved
        had the tick already; otherwise the results of the jobs enqueued now.
        """
        layout = self._shards.layout
        groups: dict[int, list[NewJob]] = {}
        for job in jobs:
            groups.setdefault(layout.of_queue(job.queue), []).append(job)
        if not groups:
            return await self._shards.first.scheduling.enqueue_tick(name, tick, [])
        out: list[EnqueueResult] | None = None
        for shard, group in groups.items():
            got = await self._shards.stores[shard].scheduling.enqueue_tick(name, tick, group)
            if got is not None:
                out = [*(out or []), *got]
        return out


class ClusterAdmin(Admin):
    """`Admin` over every shard: reads merged, changes by id sent to each shard."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards

    def _all(self) -> tuple[Admin, ...]:
        return tuple(s.admin for s in self._shards.stores)

    async def query(self, query: JobQuery) -> list[JobRecord]:
        """Jobs newest first (by ``created_at``; within one shard in its own order)."""
        wide = replace(query, offset=0, limit=max(0, query.offset) + max(0, query.limit))
        lists = await asyncio.gather(*(a.query(wide) for a in self._all()))
        shown = [[self._shards.tagged(s, job) for job in jobs] for s, jobs in enumerate(lists)]
        merged = list(heapq.merge(*shown, key=lambda job: -job.created_at))
        start = max(0, query.offset)
        return merged[start : start + max(0, query.limit)]

    async def stats(self) -> list[QueueStats]:
        """Counts per queue and priority, summed over the shards."""
        table: dict[tuple[str, int], dict[State, int]] = {}
        for rows in await asyncio.gather(*(a.stats() for a in self._all())):
            for row in rows:
                counts = table.setdefault((row.queue, row.priority), {})
                for state, n in row.counts.items():
                    counts[state] = counts.get(state, 0) + n
        return [QueueStats(q, p, c) for (q, p), c in sorted(table.items())]  # type: ignore[arg-type]

    async def counters(self) -> dict[str, int]:
        """The totals of every shard, summed."""
        out: dict[str, int] = {}
        for counters in await asyncio.gather(*(a.counters() for a in self._all())):
            for name, n in counters.items():
                out[name] = out.get(name, 0) + n
        return out

    async def oldest_ready(self) -> dict[str, float]:
        """Per queue, the oldest ready job's ``run_at`` on any shard."""
        out: dict[str, float] = {}
        for oldest in await asyncio.gather(*(a.oldest_ready() for a in self._all())):
            for queue, at in oldest.items():
                out[queue] = min(at, out.get(queue, at))
        return out

    async def diagnostics(self) -> list[str]:
        """Where each shard is (``topology:`` lines), what that placement cannot keep, and
        every shard's own warnings, each said once."""
        found = await self.places()
        lines = [place.describe() for place in found] + cluster_topology.warnings(found)
        for shard in await asyncio.gather(*(a.diagnostics() for a in self._all())):
            lines += shard
        return list(dict.fromkeys(lines))

    async def places(self) -> list[cluster_topology.ShardPlace]:
        """Where each shard is now: its slot's primary and replicas (one ``CLUSTER SLOTS``)."""
        first = self._shards.first
        with translated(first.target):
            slots = await first.connection.client().execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
        return cluster_topology.places(self._shards.layout, slots)

    async def servers(self) -> list[ServerInfo]:
        """Each shard's primary and replicas, by shard (a node serving two shards is
        listed for each)."""
        return [server for place in await self.places() for server in place.servers()]

    async def retry_dead(self, job_ids: Sequence[str] | None = None) -> int:
        """Dead jobs back to ready, on every shard."""
        return sum(await asyncio.gather(*(a.retry_dead(job_ids) for a in self._all())))

    async def cancel(self, job_id: str) -> bool:
        """Cancel the job on whichever shard holds it."""
        return any(await asyncio.gather(*(a.cancel(job_id) for a in self._all())))

    async def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the final-state jobs among ``job_ids``, on every shard."""
        return sum(await asyncio.gather(*(a.delete(job_ids) for a in self._all())))

    async def purge(self, states: Sequence[State], older_than: float | None = None) -> int:
        """Delete final-state jobs on every shard."""
        return sum(await asyncio.gather(*(a.purge(states, older_than) for a in self._all())))

    async def pause_queue(self, queue: str) -> None:
        """Pause ``queue`` on every shard."""
        await asyncio.gather(*(a.pause_queue(queue) for a in self._all()))

    async def resume_queue(self, queue: str) -> None:
        """Resume ``queue`` on every shard, waking the workers waiting there."""
        await asyncio.gather(*(a.resume_queue(queue) for a in self._all()))

    async def paused_queues(self) -> list[str]:
        """Queues paused on any shard, sorted."""
        names = await asyncio.gather(*(a.paused_queues() for a in self._all()))
        return sorted({n for shard in names for n in shard})


class ClusterTelemetry(Telemetry):
    """`Telemetry` kept on shard 0: a few writes per worker per minute."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards

    @property
    def _first(self) -> Telemetry:
        return self._shards.first.telemetry

    async def record_history(self, points: Sequence[HistoryPoint], keep: float) -> None:
        """Add per-minute counts (on shard 0)."""
        await self._first.record_history(points, keep)

    async def history(self, since: float) -> list[HistoryPoint]:
        """Stored per-minute counts with ``minute >= since``."""
        return await self._first.history(since)

    async def register_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record or refresh a live worker (on shard 0)."""
        await self._first.register_worker(info, ttl)

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker that is shutting down."""
        await self._first.unregister_worker(worker_id)

    async def workers(self) -> list[WorkerInfo]:
        """Live workers."""
        return await self._first.workers()


class ClusterProgress(Progress):
    """`Progress` on the shard that holds the leased job (its token names the shard)."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards

    async def report_progress(
        self, lease: Lease, done: float, total: float | None, note: str | None
    ) -> bool:
        """Keep the report on the leased job, on its shard; ``False`` if the lease is not
        current."""
        store, inner = self._shards.route(lease)
        return await store.progress.report_progress(inner, done, total, note)
