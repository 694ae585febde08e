"""Stores on server time never take the worker host's time (rule 9 of the design).

Redis and PostgreSQL keep leases, retries and waits on the server's clock. A worker host
whose clock is far off (here: the app's clock, a FakeClock years away from the server)
must still get its retries at server-now + the task's delay, because the worker hands the
store a delay and the store adds its own now.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from tests.contract.support import server_url

from conveyor import Conveyor, Retry
from conveyor.backends import create_backend
from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import Lease, NewJob, Priority, Routing, State
from conveyor.serialization import encode_payload
from conveyor.worker.executor import run_job
from conveyor.worker.outcome import Failed

YEAR = 365 * 24 * 3600.0


@pytest.fixture(params=["redis", "postgres"])
async def server_store(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """An empty store of each server kind, on the server's own clock (no clock injected)."""
    base = server_url(request.param)
    name = f"it_{os.urandom(6).hex()}"
    sep = "&" if "?" in base else "?"
    option = "prefix" if request.param == "redis" else "schema"
    backend = create_backend(f"{base}{sep}{option}={name}")
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
        if request.param == "postgres":
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.mark.parametrize("skew", [-10 * YEAR, 3 * YEAR])
async def test_a_retry_is_due_at_server_now_plus_the_delay_whatever_the_worker_clock(
    server_store: Backend, threads: ThreadPoolExecutor, skew: float
) -> None:
    # Given a worker whose clock is years away from the server's
    host = FakeClock(start=time.time() + skew)
    app = Conveyor("memory://", clock=host)  # the executor decides; the store is the server

    @app.task(retries=3)
    async def flaky() -> None:
        raise Retry(delay=7.5, reason="upstream busy")

    await server_store.enqueue(
        [NewJob(flaky.name, "default", Priority.NORMAL, encode_payload([], {}), 3, 60.0)]
    )
    [record] = await server_store.claim("w1", Routing(), 1, 30.0)
    assert record.lease_token is not None

    # When the task asks for a retry in 7.5 s and the worker reports it
    outcome = await run_job(app, record, "w1", threads)
    assert isinstance(outcome, Failed)
    assert await server_store.fail(Lease(record.id, record.lease_token), outcome.failure)

    # Then the retry is due 7.5 s after the server's now at the failure (the updated_at the
    # same statement wrote), near real time, and nowhere near the worker's clock
    job = await server_store.get(record.id)
    assert job is not None and job.state is State.SCHEDULED
    assert job.run_at == pytest.approx(job.updated_at + 7.5, abs=1e-6)
    assert abs(job.run_at - (time.time() + 7.5)) < 60
    assert abs(job.run_at - (host.now() + 7.5)) > YEAR
    # and it is not due yet on the server's clock
    assert await server_store.claim("w1", Routing(), 1, 30.0) == []


@pytest.mark.parametrize("skew", [-10 * YEAR, 3 * YEAR])
async def test_a_delayed_enqueue_is_due_at_server_now_plus_the_delay_whatever_the_producer_clock(
    server_store: Backend, skew: float
) -> None:
    # Given a producer whose clock is years away from the server's
    host = FakeClock(start=time.time() + skew)
    app = Conveyor("memory://", clock=host)

    @app.task
    async def report() -> None: ...

    # When it enqueues with delay= and with an explicit run_at
    at = time.time() + 3600.0
    [delayed, timed] = await server_store.enqueue(
        [app.build(report.options(delay=90).call()), app.build(report.options(run_at=at).call())]
    )

    # Then the delay counts from the server's now (the created_at it stored), and only the
    # run_at the user gave is stored as the absolute time it is
    job = await server_store.get(delayed.id)
    assert job is not None and job.state is State.SCHEDULED
    assert job.run_at == pytest.approx(job.created_at + 90, abs=1e-6)
    assert abs(job.run_at - (time.time() + 90)) < 60
    timed_job = await server_store.get(timed.id)
    assert timed_job is not None and timed_job.run_at == at
