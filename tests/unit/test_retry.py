"""Backoff arithmetic, and how the executor decides between retry and dead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from conveyor import ConfigError, Conveyor, Fail, Retry, State, exponential, fixed, linear
from conveyor.clock import FakeClock
from conveyor.job import JobRecord, Lease, Routing
from conveyor.retry import resolve_backoff
from conveyor.worker.executor import run_job
from conveyor.worker.outcome import Failed, Succeeded

# -- policies ------------------------------------------------------------------------------


def test_exponential_without_jitter_doubles_from_base_up_to_the_cap() -> None:
    policy = exponential(base=2.0, factor=3.0, maximum=100.0, jitter=False)
    assert [policy(n) for n in range(1, 6)] == [2.0, 6.0, 18.0, 54.0, 100.0]
    assert policy(0) == 2.0  # never below base, even for a nonsense attempt
    assert exponential(jitter=False)(1) == 1.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 20])
def test_exponential_with_jitter_stays_in_the_upper_half(attempt: int) -> None:
    policy = exponential(base=1.0, factor=2.0, maximum=60.0)
    full = min(60.0, 2.0 ** (attempt - 1))
    delays = [policy(attempt) for _ in range(200)]
    assert all(full / 2 <= d <= full for d in delays)
    assert len(set(delays)) > 1  # jitter spreads them out


def test_linear_and_fixed() -> None:
    assert [linear(step=5, maximum=12)(n) for n in (1, 2, 3)] == [5, 10, 12]
    assert linear(step=5)(0) == 5
    assert [fixed(7)(n) for n in (1, 2, 10)] == [7, 7, 7]


def test_resolve_backoff_accepts_names_numbers_and_callables() -> None:
    assert resolve_backoff(None) == exponential()
    assert resolve_backoff("exponential") == exponential()
    assert resolve_backoff("linear") == linear()
    assert resolve_backoff("fixed") == fixed()
    assert resolve_backoff(3) == fixed(3.0)
    assert resolve_backoff(0.5)(9) == 0.5

    def custom(attempt: int) -> float:
        return attempt * 100.0

    assert resolve_backoff(custom) is custom


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "negative"), ("quadratic", "not understood"), (True, "not understood")],
)
def test_resolve_backoff_rejects_what_it_cannot_use(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_backoff(value)  # type: ignore[arg-type]


def test_a_task_rejects_a_bad_backoff_at_registration(app: Conveyor) -> None:
    with pytest.raises(ConfigError, match="'exponential', 'linear', 'fixed'"):
        app.task(backoff="soon")


# -- the executor's decision -----------------------------------------------------------------


@pytest.fixture
async def threads() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1)
    yield pool
    pool.shutdown(wait=False)


async def claim_one(app: Conveyor) -> JobRecord:
    jobs = await app.backend.claim("w1", Routing(), 1, 30.0)
    assert len(jobs) == 1, "expected exactly one due job"
    return jobs[0]


async def run_and_ack(app: Conveyor, threads: ThreadPoolExecutor) -> tuple[JobRecord, Failed]:
    """Claim the one due job, run it through the executor, report its failure."""
    job = await claim_one(app)
    outcome = await run_job(app, job, "w1", threads)
    assert job.lease_token is not None
    lease = Lease(job.id, job.lease_token)
    if isinstance(outcome, Succeeded):
        assert await app.backend.complete(lease, outcome.result)
        raise AssertionError("the job was expected to fail")
    assert isinstance(outcome, Failed)
    assert await app.backend.fail(lease, outcome.failure)
    return job, outcome


async def test_with_two_retries_attempts_one_and_two_retry_and_three_is_dead(
    app: Conveyor, clock: FakeClock, threads: ThreadPoolExecutor
) -> None:
    @app.task(retries=2, backoff=fixed(10))
    async def always_fails() -> None:
        raise ValueError("nope")

    handle = always_fails.enqueue()
    for attempt in (1, 2):
        job, outcome = await run_and_ack(app, threads)
        assert job.attempts == attempt
        assert outcome.failure is not None
        assert outcome.failure.retry_in == 10
        assert handle.state() is State.SCHEDULED
        assert handle.info().run_at == clock.now() + 10
        clock.advance(10)
    job, outcome = await run_and_ack(app, threads)
    assert job.attempts == 3
    assert outcome.failure is not None and outcome.failure.retry_in is None
    record = handle.info()
    assert record.state is State.DEAD
    assert record.last_error == "ValueError: nope (gave up after 3 attempts)"
    assert record.traceback is not None and "raise ValueError" in record.traceback


async def test_retry_with_a_delay_schedules_exactly_now_plus_delay(
    app: Conveyor, clock: FakeClock, threads: ThreadPoolExecutor
) -> None:
    @app.task(retries=5, backoff=fixed(999))
    async def later() -> None:
        raise Retry(delay=5, reason="upstream busy")

    handle = later.enqueue()
    start = clock.now()
    _, outcome = await run_and_ack(app, threads)
    assert outcome.failure is not None
    assert outcome.failure.retry_in == 5
    assert outcome.failure.error == "upstream busy"
    record = handle.info()
    assert (record.state, record.run_at) == (State.SCHEDULED, start + 5)
    clock.advance(4.999)
    assert await app.backend.claim("w1", Routing(), 1, 30.0) == []
    clock.advance(0.001)
    assert (await claim_one(app)).id == handle.id


async def test_retry_without_a_delay_uses_the_task_backoff(
    app: Conveyor, clock: FakeClock, threads: ThreadPoolExecutor
) -> None:
    @app.task(retries=5, backoff=linear(step=3))
    def again() -> None:
        raise Retry()

    again.enqueue()
    _, outcome = await run_and_ack(app, threads)
    assert outcome.failure is not None and outcome.failure.retry_in == 3


async def test_retry_counts_as_an_attempt_and_ends_dead(
    app: Conveyor, threads: ThreadPoolExecutor
) -> None:
    @app.task(retries=0)
    async def once() -> None:
        raise Retry(delay=1)

    handle = once.enqueue()
    await run_and_ack(app, threads)
    assert handle.state() is State.DEAD


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "soon", True])
async def test_a_retry_delay_that_is_not_usable_seconds_falls_back_to_the_backoff(
    app: Conveyor, clock: FakeClock, threads: ThreadPoolExecutor, bad: object
) -> None:
    @app.task(retries=3, backoff=fixed(7))
    async def odd() -> None:
        raise Retry(delay=bad)  # type: ignore[arg-type]

    handle = odd.enqueue()
    _, outcome = await run_and_ack(app, threads)
    assert outcome.failure is not None and outcome.failure.retry_in == 7
    assert handle.info().run_at == clock.now() + 7


async def test_fail_dead_letters_at_once_with_retries_left(
    app: Conveyor, threads: ThreadPoolExecutor
) -> None:
    @app.task(retries=10)
    async def give_up() -> None:
        raise Fail("card declined")

    handle = give_up.enqueue()
    _, outcome = await run_and_ack(app, threads)
    assert outcome.failure is not None and outcome.failure.retry_in is None
    record = handle.info()
    assert (record.state, record.attempts) == (State.DEAD, 1)
    assert record.last_error == "Fail: card declined"
    assert record.failed_at is not None
