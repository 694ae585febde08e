"""Leases and fencing: extend, complete, fail, release, recover, poison pills, zombies.

The core rules are checked with core verbs (a stale call returns ``False`` and `get` shows
nothing changed); that each such call is also counted is checked where a store can show its
counters (`Admin.counters`), in `TestCounters`.
"""

from __future__ import annotations

import pytest

from conveyor.backends.base import Backend, poison_pill_reason
from conveyor.backends.capabilities import Admin
from conveyor.clock import FakeClock
from conveyor.job import Failure, Lease, State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import LEASE, add, new_job, stored, take, take_one


async def fenced(backend: Backend) -> int:
    """How many calls with a lost lease the store has rejected."""
    return (await backend.admin.counters())["fenced"]


async def stale_calls(backend: Backend) -> tuple[str, Lease, list[object]]:
    """Every lease-taking verb called with a wrong token (and one with an unknown job).

    Returns the job, its real lease and what the stale calls returned.
    """
    [job_id] = await add(backend, new_job())
    _, lease = await take_one(backend)
    stale = Lease(job_id, "f" * 32)
    results: list[object] = [
        await backend.complete(stale, b"x"),
        await backend.fail(stale, Failure("x")),
        await backend.fail(stale, Failure("x", retry_in=0.0)),
        await backend.release(stale),
        await backend.defer(stale, 1.0),
        await backend.complete(Lease("missing", lease.token), None),
    ]
    return job_id, lease, results


async def used_lease_calls(backend: Backend) -> list[object]:
    """A completed job's lease, used again by complete, release and extend."""
    await add(backend, new_job())
    _, lease = await take_one(backend)
    assert await backend.complete(lease, None)
    return [
        await backend.complete(lease, None),
        await backend.release(lease),
        await backend.extend([lease], LEASE),
    ]


async def zombie_calls(backend: Backend, clock: FakeClock) -> tuple[str, Lease, list[object]]:
    """Worker 1 stalls past its lease; after recovery worker 2 runs the job and worker 1
    wakes up and reports with its old lease. Returns the job, worker 2's lease and what
    worker 1's late calls returned."""
    [job_id] = await add(backend, new_job())
    [zombie] = await take(backend, worker="w1")
    clock.advance(LEASE + 1)
    await backend.recover(max_recoveries=3)
    [fresh] = await take(backend, worker="w2")
    stale = Lease(job_id, zombie.lease_token or "")
    late: list[object] = [
        await backend.extend([stale], LEASE),
        await backend.complete(stale, b"zombie"),
        await backend.fail(stale, Failure("zombie")),
        await backend.release(stale),
    ]
    return job_id, Lease(job_id, fresh.lease_token or ""), late


async def poison(backend: Backend, clock: FakeClock, key: str) -> str:
    """A job that loses its worker three times, recovered twice, then dead (max 3)."""
    [job_id] = await add(backend, new_job(unique_key=key))
    for n in (1, 2):
        await take_one(backend)
        clock.advance(LEASE)
        assert (await backend.recover(max_recoveries=3)).recovered == 1
        assert (await stored(backend, job_id)).recoveries == n
    await take_one(backend)
    clock.advance(LEASE)
    report = await backend.recover(max_recoveries=3)
    assert (report.recovered, report.dead) == (0, 1)
    return job_id


@pytest.mark.asyncio
class TestLeases:
    """Core: every store runs these."""

    async def test_extend_keeps_the_lease_past_its_old_expiry(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a running job whose heartbeat extends its lease just before expiry
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        clock.advance(LEASE - 1)
        assert await backend.extend([lease], LEASE) == [True]
        job = await backend.get(job_id)
        assert job is not None and job.lease_expires_at == clock.now() + LEASE

        # When the old expiry passes and the reaper runs
        clock.advance(2)
        report = await backend.recover(max_recoveries=3)

        # Then the job is still running and its lease still works
        assert (report.recovered, report.dead) == (0, 0)
        assert (await stored(backend, job_id)).state is State.RUNNING
        assert await backend.complete(lease, b"ok")

    async def test_extend_with_a_stale_token_is_false(self, backend: Backend) -> None:
        await add(backend, new_job(), new_job())
        [a, b] = await take(backend)
        good = Lease(a.id, a.lease_token or "")
        stale = Lease(b.id, "0" * 32)

        assert await backend.extend([good, stale, Lease("missing", "x")], LEASE) == [
            True,
            False,
            False,
        ]
        assert await backend.get(b.id) == b  # the stale extend changed nothing

    async def test_complete_stores_the_result(self, backend: Backend, clock: FakeClock) -> None:
        [job_id] = await add(backend, new_job(unique_key="k"))
        _, lease = await take_one(backend)
        clock.advance(2)

        assert await backend.complete(lease, b'{"total":3}')

        job = await backend.get(job_id)
        assert job is not None and job.state is State.SUCCEEDED
        assert job.result == b'{"total":3}'
        assert job.finished_at == job.updated_at == clock.now()
        assert job.lease_token is None and job.lease_expires_at is None
        assert job.attempts == 1 and job.failed_at is None

    async def test_complete_without_result(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)

        assert await backend.complete(lease, None)
        assert (await stored(backend, job_id)).result is None

    async def test_stale_token_is_rejected_everywhere(self, backend: Backend) -> None:
        job_id, lease, results = await stale_calls(backend)
        before = await stored(backend, job_id)

        assert results == [False] * 6
        assert await backend.get(job_id) == before  # nothing changed
        assert before.state is State.RUNNING and before.lease_token == lease.token
        assert await backend.complete(lease, None)

    async def test_a_used_lease_cannot_be_used_again(self, backend: Backend) -> None:
        assert await used_lease_calls(backend) == [False, False, [False]]

    async def test_fail_with_retry_in_schedules_and_runs_again(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a job that fails once with a retry in 10 s
        [job_id] = await add(backend, new_job(unique_key="k"))
        _, lease = await take_one(backend)
        assert await backend.fail(lease, Failure("boom", "Traceback: ...", retry_in=10))

        job = await backend.get(job_id)
        assert job is not None and job.state is State.SCHEDULED
        assert (job.last_error, job.traceback) == ("boom", "Traceback: ...")
        assert job.run_at == clock.now() + 10 and job.attempts == 1
        assert job.failed_at is None and job.finished_at is None and job.lease_token is None
        # While it waits for its retry it still holds its unique key
        assert (await backend.enqueue([new_job(unique_key="k")]))[0].existing

        # When the retry is not yet due, nobody gets it; then it runs again
        clock.advance(9)
        assert await take(backend) == []
        clock.advance(1)
        [again] = await take(backend)
        assert again.id == job_id and again.attempts == 2

    async def test_a_retry_is_due_retry_in_after_the_stores_now_at_the_failure(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given a job that ran for 7 s on the store's clock before failing
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        clock.advance(7)
        failed_at = clock.now()

        # When it fails with a retry in 2.5 s
        assert await backend.fail(lease, Failure("boom", retry_in=2.5))

        # Then the retry is due 2.5 s after the failure on that same clock (not after the
        # claim, and not at any time the caller computed)
        job = await backend.get(job_id)
        assert job is not None and job.state is State.SCHEDULED
        assert job.run_at == failed_at + 2.5 and job.updated_at == failed_at
        clock.advance(2.4)
        assert await take(backend) == []
        clock.advance(0.1)
        assert [j.id for j in await take(backend)] == [job_id]

    async def test_a_retry_in_of_zero_is_due_at_once(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        clock.advance(1)

        assert await backend.fail(lease, Failure("boom", retry_in=0))

        job = await backend.get(job_id)
        assert job is not None and job.run_at == clock.now()
        assert [j.id for j in await take(backend)] == [job_id]

    async def test_fail_without_retry_is_dead(self, backend: Backend, clock: FakeClock) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        clock.advance(1)

        assert await backend.fail(lease, Failure("ValueError: bad", "Traceback (most recent...)"))

        job = await backend.get(job_id)
        assert job is not None and job.state is State.DEAD
        assert job.last_error == "ValueError: bad"
        assert job.traceback == "Traceback (most recent...)"
        assert job.failed_at == job.finished_at == clock.now()
        assert job.lease_token is None
        assert await take(backend) == []

    async def test_release_returns_the_job_and_its_attempt(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)
        clock.advance(1)

        assert await backend.release(lease)

        job = await backend.get(job_id)
        assert job is not None and job.state is State.READY
        assert job.attempts == 0 and job.lease_token is None and job.updated_at == clock.now()
        [again] = await take(backend)
        assert again.id == job_id and again.attempts == 1

    async def test_recover_returns_expired_leases_to_ready(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await add(backend, new_job(), new_job())
        [a, b] = await take(backend)
        clock.advance(LEASE / 2)
        assert await backend.extend([Lease(b.id, b.lease_token or "")], LEASE) == [True]

        # The reaper does nothing before the lease expires ...
        clock.advance(LEASE / 2 - 0.001)
        assert (await backend.recover(max_recoveries=3)).recovered == 0
        # ... and returns the expired one (at its expiry exactly) but not the extended one
        clock.advance(0.001)
        report = await backend.recover(max_recoveries=3)

        assert (report.recovered, report.dead) == (1, 0)
        job = await backend.get(a.id)
        assert job is not None and job.state is State.READY
        assert (job.recoveries, job.attempts, job.lease_token) == (1, 0, None)
        assert (await stored(backend, b.id)).state is State.RUNNING

    async def test_poison_pill_after_max_recoveries(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        job_id = await poison(backend, clock, "pill")

        job = await backend.get(job_id)
        assert job is not None and job.state is State.DEAD
        assert job.recoveries == 3 and job.attempts == 0
        assert job.last_error == poison_pill_reason(3)
        assert job.failed_at == job.finished_at == clock.now()
        assert not (await backend.enqueue([new_job(unique_key="pill")]))[0].existing

    async def test_late_completion_after_recovery_is_fenced(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        # Given worker 1 stalled past its lease, and worker 2 runs the job now
        # When worker 1 wakes up and reports
        job_id, fresh, late = await zombie_calls(backend, clock)

        # Then every late call is rejected; worker 2's result wins
        assert late == [[False], False, False, False]
        assert await backend.complete(fresh, b"real")
        job = await backend.get(job_id)
        assert job is not None and job.result == b"real" and job.worker_id == "w2"


@pytest.mark.asyncio
@requires(Admin)
class TestCounters:
    """What the store counts (`Admin.counters`): fenced calls, recoveries, poison pills."""

    async def test_counters_start_at_zero(self, backend: Backend) -> None:
        assert await backend.admin.counters() == {"fenced": 0, "recovered": 0, "poisoned": 0}

    async def test_a_stale_extend_is_counted_for_each_lease(self, backend: Backend) -> None:
        await add(backend, new_job(), new_job())
        [a, b] = await take(backend)
        good = Lease(a.id, a.lease_token or "")

        await backend.extend([good, Lease(b.id, "0" * 32), Lease("missing", "x")], LEASE)

        assert await fenced(backend) == 2

    async def test_every_stale_call_is_counted(self, backend: Backend) -> None:
        await stale_calls(backend)
        assert await fenced(backend) == 6

    async def test_a_used_lease_is_counted_each_time(self, backend: Backend) -> None:
        await used_lease_calls(backend)
        assert await fenced(backend) == 3

    async def test_a_zombies_late_calls_are_counted(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await zombie_calls(backend, clock)
        assert await backend.admin.counters() == {"fenced": 4, "recovered": 1, "poisoned": 0}

    async def test_recoveries_and_poison_pills_are_counted(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await poison(backend, clock, "pill")
        assert await backend.admin.counters() == {"fenced": 0, "recovered": 2, "poisoned": 1}

    async def test_cancel_a_running_job_fences_its_worker(self, backend: Backend) -> None:
        [job_id] = await add(backend, new_job())
        _, lease = await take_one(backend)

        assert await backend.admin.cancel(job_id)

        assert await backend.complete(lease, None) is False
        assert await fenced(backend) == 1
        job = await backend.get(job_id)
        assert job is not None and job.state is State.CANCELLED and job.lease_token is None
