"""Leases and fencing: extend, complete, fail, release, recover, poison pills, zombies."""

from __future__ import annotations

from conveyor.backends.base import Backend, poison_pill_reason
from conveyor.clock import FakeClock
from conveyor.job import Failure, Lease, State

from .support import LEASE, add, new_job, take, take_one


async def fenced(backend: Backend) -> int:
    return (await backend.counters())["fenced"]


async def test_counters_start_at_zero(backend: Backend):
    assert await backend.counters() == {"fenced": 0, "recovered": 0, "poisoned": 0}


async def test_extend_keeps_the_lease_past_its_old_expiry(backend: Backend, clock: FakeClock):
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
    assert (await backend.get(job_id)).state is State.RUNNING  # type: ignore[union-attr]
    assert await backend.complete(lease, b"ok")


async def test_extend_with_a_stale_token_is_false_and_counted(backend: Backend):
    await add(backend, new_job(), new_job())
    [a, b] = await take(backend)
    good = Lease(a.id, a.lease_token or "")
    stale = Lease(b.id, "0" * 32)

    assert await backend.extend([good, stale, Lease("missing", "x")], LEASE) == [
        True,
        False,
        False,
    ]
    assert await fenced(backend) == 2


async def test_complete_stores_the_result(backend: Backend, clock: FakeClock):
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


async def test_complete_without_result(backend: Backend):
    [job_id] = await add(backend, new_job())
    _, lease = await take_one(backend)

    assert await backend.complete(lease, None)
    assert (await backend.get(job_id)).result is None  # type: ignore[union-attr]


async def test_stale_token_is_rejected_and_counted_everywhere(backend: Backend):
    [job_id] = await add(backend, new_job())
    job, lease = await take_one(backend)
    stale = Lease(job_id, "f" * 32)

    assert await backend.complete(stale, b"x") is False
    assert await backend.fail(stale, Failure("x")) is False
    assert await backend.fail(stale, Failure("x", retry_in=0.0)) is False
    assert await backend.release(stale) is False
    assert await backend.complete(Lease("missing", lease.token), None) is False

    assert await fenced(backend) == 5
    assert await backend.get(job_id) == job  # nothing changed
    assert await backend.complete(lease, None)


async def test_a_used_lease_cannot_be_used_again(backend: Backend):
    await add(backend, new_job())
    _, lease = await take_one(backend)
    assert await backend.complete(lease, None)

    assert await backend.complete(lease, None) is False
    assert await backend.release(lease) is False
    assert await backend.extend([lease], LEASE) == [False]
    assert await fenced(backend) == 3


async def test_fail_with_retry_in_schedules_and_runs_again(backend: Backend, clock: FakeClock):
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
    backend: Backend, clock: FakeClock
):
    # Given a job that ran for 7 s on the store's clock before failing
    [job_id] = await add(backend, new_job())
    _, lease = await take_one(backend)
    clock.advance(7)
    failed_at = clock.now()

    # When it fails with a retry in 2.5 s
    assert await backend.fail(lease, Failure("boom", retry_in=2.5))

    # Then the retry is due 2.5 s after the failure on that same clock (not after the claim,
    # and not at any time the caller computed)
    job = await backend.get(job_id)
    assert job is not None and job.state is State.SCHEDULED
    assert job.run_at == failed_at + 2.5 and job.updated_at == failed_at
    clock.advance(2.4)
    assert await take(backend) == []
    clock.advance(0.1)
    assert [j.id for j in await take(backend)] == [job_id]


async def test_a_retry_in_of_zero_is_due_at_once(backend: Backend, clock: FakeClock):
    [job_id] = await add(backend, new_job())
    _, lease = await take_one(backend)
    clock.advance(1)

    assert await backend.fail(lease, Failure("boom", retry_in=0))

    job = await backend.get(job_id)
    assert job is not None and job.run_at == clock.now()
    assert [j.id for j in await take(backend)] == [job_id]


async def test_fail_without_retry_is_dead(backend: Backend, clock: FakeClock):
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


async def test_release_returns_the_job_and_its_attempt(backend: Backend, clock: FakeClock):
    [job_id] = await add(backend, new_job())
    _, lease = await take_one(backend)
    clock.advance(1)

    assert await backend.release(lease)

    job = await backend.get(job_id)
    assert job is not None and job.state is State.READY
    assert job.attempts == 0 and job.lease_token is None and job.updated_at == clock.now()
    [again] = await take(backend)
    assert again.id == job_id and again.attempts == 1


async def test_recover_returns_expired_leases_to_ready(backend: Backend, clock: FakeClock):
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
    assert (await backend.get(b.id)).state is State.RUNNING  # type: ignore[union-attr]
    assert (await backend.counters())["recovered"] == 1


async def test_poison_pill_after_max_recoveries(backend: Backend, clock: FakeClock):
    [job_id] = await add(backend, new_job(unique_key="pill"))
    for n in (1, 2):
        await take_one(backend)
        clock.advance(LEASE)
        assert (await backend.recover(max_recoveries=3)).recovered == 1
        assert (await backend.get(job_id)).recoveries == n  # type: ignore[union-attr]

    await take_one(backend)
    clock.advance(LEASE)
    report = await backend.recover(max_recoveries=3)

    assert (report.recovered, report.dead) == (0, 1)
    job = await backend.get(job_id)
    assert job is not None and job.state is State.DEAD
    assert job.recoveries == 3 and job.attempts == 0
    assert job.last_error == poison_pill_reason(3)
    assert job.failed_at == job.finished_at == clock.now()
    assert await backend.counters() == {"fenced": 0, "recovered": 2, "poisoned": 1}
    assert not (await backend.enqueue([new_job(unique_key="pill")]))[0].existing


async def test_late_completion_after_recovery_is_fenced(backend: Backend, clock: FakeClock):
    # Given worker 1 claims a job, then stalls past its lease
    [job_id] = await add(backend, new_job())
    [zombie] = await take(backend, worker="w1")
    clock.advance(LEASE + 1)
    await backend.recover(max_recoveries=3)

    # When worker 2 runs the job, and worker 1 wakes up and reports
    [fresh] = await take(backend, worker="w2")
    stale = Lease(job_id, zombie.lease_token or "")
    late = [
        await backend.extend([stale], LEASE),
        await backend.complete(stale, b"zombie"),
        await backend.fail(stale, Failure("zombie")),
        await backend.release(stale),
    ]

    # Then every late call is rejected and counted; worker 2's result wins
    assert late == [[False], False, False, False]
    assert await fenced(backend) == 4
    assert await backend.complete(Lease(job_id, fresh.lease_token or ""), b"real")
    job = await backend.get(job_id)
    assert job is not None and job.result == b"real" and job.worker_id == "w2"


async def test_cancel_a_running_job_fences_its_worker(backend: Backend):
    [job_id] = await add(backend, new_job())
    _, lease = await take_one(backend)

    assert await backend.cancel(job_id)

    assert await backend.complete(lease, None) is False
    assert await fenced(backend) == 1
    job = await backend.get(job_id)
    assert job is not None and job.state is State.CANCELLED and job.lease_token is None
