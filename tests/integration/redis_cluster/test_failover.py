"""A primary of the cluster SIGKILLed under load: its replica is promoted, producers and
workers carry on through the cluster client, and no acknowledged enqueue is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from redis.crc import key_slot

from conveyor.backends import create_backend
from conveyor.backends.base import Backend
from conveyor.backends.redis.cluster import ClusterBackend
from conveyor.errors import BackendError
from conveyor.job import Lease, NewJob, Priority, Routing, State

from .cluster_server import RedisClusterServers
from .conftest import fresh_url

#: Seconds the cluster may take to promote a replica (node timeout 2 s, then an election).
FAILOVER_TIMEOUT = 30.0
#: A short lease, so a completion lost in the failover is recovered within the test.
LEASE = 3.0
#: Producer coroutines, each enqueueing five jobs per call.
PRODUCERS = 4


def job(n: int) -> NewJob:
    return NewJob(
        task="app.work",
        queue=f"q{n % 6}",
        priority=Priority.NORMAL,
        payload=f"[{n}]".encode(),
        max_retries=3,
        timeout=60.0,
    )


class Load:
    """A producer and two workers on one store, each on its own handle, riding out errors
    (the outage) with a short pause, as Conveyor's worker does with its back-off."""

    def __init__(self, store: ClusterBackend) -> None:
        self.store = store
        self.workers = [store.clone(), store.clone()]
        self.acknowledged: list[str] = []
        self.done: set[str] = set()
        self.queues: dict[str, str] = {}  # job id -> its queue
        self.errors: list[str] = []
        self.producing = asyncio.Event()
        self.working = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for handle in self.workers:
            await handle.open()
        self.producing.set()
        self.working.set()
        self.tasks = [
            *(asyncio.create_task(self._produce(p)) for p in range(PRODUCERS)),
            *(asyncio.create_task(self._work(w, f"w{i}")) for i, w in enumerate(self.workers)),
        ]

    async def _produce(self, producer: int) -> None:
        n = producer * 1_000_000
        while self.producing.is_set():
            try:
                results = await self.store.enqueue([job(n + i) for i in range(5)])
            except BackendError as exc:  # BackendUnavailable too: the outage
                self.errors.append(str(exc))
                await asyncio.sleep(0.2)
                continue
            self.acknowledged += [r.id for r in results]
            self.queues.update({r.id: f"q{(n + i) % 6}" for i, r in enumerate(results)})
            n += 5
            await asyncio.sleep(0.01)

    async def _work(self, handle: Backend, name: str) -> None:
        while self.working.is_set():
            try:
                await handle.recover(max_recoveries=10)
                for record in await handle.claim(name, Routing(), 20, LEASE, wait=0.5):
                    assert record.lease_token is not None
                    if await handle.complete(Lease(record.id, record.lease_token), None):
                        self.done.add(record.id)
            except BackendError as exc:
                self.errors.append(str(exc))
                await asyncio.sleep(0.2)

    def resumed_on_shard_0(self, since: int) -> bool:
        """Whether jobs of a shard-0 queue were acknowledged after the first ``since``
        (and more than 50 jobs in all)."""
        layout = self.store.layout
        later = [self.queues[job_id] for job_id in self.acknowledged[since:]]
        return len(later) > 50 and any(layout.of_queue(q) == 0 for q in later)

    async def stop(self) -> None:
        self.producing.clear()
        self.working.clear()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)
        for handle in self.workers:
            await handle.close()


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Wait (bounded) for ``condition``; whether it came true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


@pytest.mark.timeout(150)
async def test_a_killed_primary_fails_over_and_no_acknowledged_job_is_lost(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given a producer and two workers on a store of three shards, jobs flowing
    store = create_backend(fresh_url(redis_cluster, 3))
    assert isinstance(store, ClusterBackend)
    await store.open()
    load = Load(store)
    victim = None
    try:
        await load.start()
        assert await until(lambda: len(load.done) > 300, 30), load.errors[-3:]

        # When the primary holding shard 0 is SIGKILLed under load
        slot = key_slot(("{" + store.layout.tags[0] + "}").encode())
        victim = redis_cluster.node_for_slot(slot)
        before = len(load.acknowledged)
        killed_at = time.monotonic()
        victim.kill()
        done_at_kill = len(load.done)

        # Then its replica takes the slots and enqueues to shard 0 are acknowledged again
        resumed = await until(lambda: load.resumed_on_shard_0(before), FAILOVER_TIMEOUT)
        assert resumed, f"no failover within {FAILOVER_TIMEOUT} s: {load.errors[-3:]}"
        print(f"\nfailover: enqueues resumed {time.monotonic() - killed_at:.1f} s after the kill")
        print(f"failover: {len(load.done) - done_at_kill} jobs completed during the outage")
        assert redis_cluster.node_for_slot(slot) is not victim

        # and once producing stops, every acknowledged job runs and ends succeeded.
        load.producing.clear()
        everything = await until(lambda: set(load.acknowledged) <= load.done, 60)
        lost = set(load.acknowledged) - load.done
        assert everything, f"{len(lost)} acknowledged jobs never ran, e.g. {sorted(lost)[:3]}"
        print(
            f"failover: {len(load.acknowledged)} enqueues acknowledged, none lost; "
            f"{len(load.errors)} calls failed during the outage"
        )
        sample = load.acknowledged[:: max(1, len(load.acknowledged) // 50)]
        for job_id in sample:
            record = await store.get(job_id)
            assert record is not None and record.state is State.SUCCEEDED, job_id
    finally:
        await load.stop()
        await store.close()
        if victim is not None:  # back, as a replica of the promoted one
            victim.start()
            redis_cluster.wait_ok(FAILOVER_TIMEOUT)
