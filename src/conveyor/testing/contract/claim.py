"""Claiming: strict priority, FIFO, routing in storage, limits and what a claim records."""

from __future__ import annotations

import pytest

from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import Priority, Routing, State
from conveyor.testing.contract.jobs import LEASE, add, new_job, stored, take

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


@pytest.mark.asyncio
class TestClaim:
    """Core: every store runs these."""

    async def test_strict_priority_across_queues(self, backend: Backend) -> None:
        # Given older low and normal jobs, then high ones, spread over queues
        low = await add(backend, new_job(queue="a", priority=LOW), new_job(queue="b", priority=LOW))
        normal = await add(backend, new_job(queue="b", priority=NORMAL))
        high = await add(
            backend, new_job(queue="c", priority=HIGH), new_job(queue="a", priority=HIGH)
        )

        # When a worker serving every queue claims them one at a time
        order = [j.id for _ in range(5) for j in await take(backend, limit=1)]

        # Then every high job comes first, then normal, then low; FIFO inside each
        assert order == high + normal + low

    async def test_one_claim_returns_jobs_in_run_order(self, backend: Backend) -> None:
        low = await add(backend, new_job(priority=LOW))
        high = await add(backend, new_job(priority=HIGH), new_job(priority=HIGH))

        claimed = await take(backend, limit=10)

        assert [j.id for j in claimed] == high + low

    async def test_fifo_within_a_priority(self, backend: Backend) -> None:
        ids = await add(backend, *[new_job(queue=f"q{i % 3}") for i in range(9)])

        assert [j.id for j in await take(backend, limit=4)] == ids[:4]
        assert [j.id for j in await take(backend, limit=10)] == ids[4:]

    async def test_older_run_at_first_within_a_priority(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # A delayed job that became due before a newer immediate job was enqueued runs first.
        [delayed] = await add(backend, new_job(run_at=clock.now() + 5))
        clock.advance(10)
        [fresh] = await add(backend, new_job())

        assert [j.id for j in await take(backend)] == [delayed, fresh]

    async def test_limit_is_respected(self, backend: Backend) -> None:
        await add(backend, *[new_job() for _ in range(5)])

        assert len(await take(backend, limit=2)) == 2
        assert len(await take(backend, limit=2)) == 2
        assert len(await take(backend, limit=2)) == 1
        assert await take(backend, limit=2) == []

    async def test_claim_records_the_lease(self, backend: Backend, clock: FakeClock) -> None:
        [job_id] = await add(backend, new_job())
        clock.advance(3)

        [job] = await backend.claim("worker-7", Routing(), 1, 45.0)

        assert job.id == job_id and job.state is State.RUNNING
        assert job.attempts == 1
        assert job.worker_id == "worker-7"
        assert job.started_at == job.updated_at == clock.now()
        assert job.lease_expires_at == clock.now() + 45.0
        assert isinstance(job.lease_token, str) and len(job.lease_token) >= 16
        assert await backend.get(job_id) == job

    async def test_a_claimed_job_is_not_claimed_again(self, backend: Backend) -> None:
        await add(backend, new_job())
        [first] = await take(backend, worker="w1")

        assert await take(backend, worker="w2") == []
        assert (await stored(backend, first.id)).worker_id == "w1"

    async def test_routing_by_queue_name(self, backend: Backend) -> None:
        mail = await add(backend, new_job(queue="mail"))
        await add(backend, new_job(queue="jobs"), new_job(queue="mailbox"))

        claimed = await take(backend, Routing(queues=("mail",)))

        assert [j.id for j in claimed] == mail

    async def test_routing_by_glob_pattern_includes_queues_created_later(
        self, backend: Backend
    ) -> None:
        routing = Routing(queues=("account-*",))
        first = await add(backend, new_job(queue="account-1"), new_job(queue="billing"))
        assert [j.id for j in await take(backend, routing)] == first[:1]

        # A queue that did not exist when the worker started still matches its pattern.
        later = await add(backend, new_job(queue="account-42"), new_job(queue="accounts"))

        assert [j.id for j in await take(backend, routing)] == later[:1]

    async def test_routing_glob_set_and_single_character(self, backend: Backend) -> None:
        ids = await add(
            backend,
            new_job(queue="q1"),
            new_job(queue="q2"),
            new_job(queue="q10"),
            new_job(queue="r1"),
        )

        assert [j.id for j in await take(backend, Routing(queues=("q?",)))] == ids[:2]
        assert [j.id for j in await take(backend, Routing(queues=("[qr]1*",)))] == [ids[2], ids[3]]

    async def test_routing_by_priorities(self, backend: Backend) -> None:
        ids = await add(
            backend, new_job(priority=HIGH), new_job(priority=NORMAL), new_job(priority=LOW)
        )

        claimed = await take(backend, Routing(priorities=(LOW, NORMAL)))

        assert [j.id for j in claimed] == [ids[1], ids[2]]

    async def test_routing_by_tasks(self, backend: Backend) -> None:
        ids = await add(backend, new_job(task="a.x"), new_job(task="b.y"), new_job(task="c.z"))

        claimed = await take(backend, Routing(tasks=("c.z", "a.x")))

        assert [j.id for j in claimed] == [ids[0], ids[2]]

    async def test_routing_dimensions_combine(self, backend: Backend) -> None:
        jobs = [
            new_job(queue=q, priority=p, task=t)
            for q in ("mail", "jobs")
            for p in (HIGH, LOW)
            for t in ("send", "sync")
        ]
        await add(backend, *jobs)
        routing = Routing(queues=("mail", "other-*"), priorities=(LOW,), tasks=("sync",))

        claimed = await take(backend, routing)

        assert [(j.queue, j.priority, j.task) for j in claimed] == [("mail", LOW, "sync")]

    async def test_routing_never_returns_a_non_matching_job(self, backend: Backend) -> None:
        jobs = [
            new_job(queue=q, priority=p, task=t)
            for q in ("a-1", "a-2", "b-1", "c")
            for p in Priority
            for t in ("t1", "t2")
        ]
        await add(backend, *jobs)
        routings = [
            Routing(queues=("a-*",)),
            Routing(queues=("c", "b-?"), priorities=(HIGH,)),
            Routing(tasks=("t2",), priorities=(NORMAL, LOW)),
            Routing(queues=()),
            Routing(tasks=("none",)),
        ]
        seen = 0
        for routing in routings:
            for job in await take(backend, routing):
                assert routing.matches(job.queue, job.priority, job.task), (routing, job)
                seen += 1
        # a-* takes 12; c/b-? high takes 4; t2 normal/low takes the 4 left in b-1 and c
        assert seen == 12 + 4 + 4

    async def test_empty_routing_lists_match_nothing(self, backend: Backend) -> None:
        await add(backend, new_job())

        for routing in (Routing(queues=()), Routing(priorities=()), Routing(tasks=())):
            assert await take(backend, routing) == []
        assert len(await take(backend)) == 1

    async def test_lease_token_changes_on_every_claim(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        [job_id] = await add(backend, new_job())
        [first] = await take(backend)
        clock.advance(LEASE + 1)
        await backend.recover(max_recoveries=5)

        [second] = await take(backend)

        assert second.id == job_id and second.lease_token != first.lease_token
