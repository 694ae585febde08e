"""``claim(..., wait=)`` on Redis: parked on the handle's wake list, with the claim pipelined
behind the blocking pop on the server's clock (pop, then claim, with an injected clock).

What it returns is what it leased: nothing is kept for a later call, and a claim cancelled
while it waits leaves no job running.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis import Redis
from tests.contract.support import new_job, server_url

from conveyor.backends import create_backend
from conveyor.backends.redis import RedisBackend, claiming
from conveyor.backends.redis.connection import RedisConnection
from conveyor.backends.redis.quarantine import Claimed
from conveyor.clock import SYSTEM_CLOCK, Clock, FakeClock
from conveyor.job import Lease, Routing, State

EVERYTHING = Routing()
MAIL = Routing(queues=("mail",))


def fresh_url() -> str:
    return f"{server_url('redis')}?prefix=wait-{os.urandom(6).hex()}"


async def opened(url: str, clock: Clock) -> RedisBackend:
    b = create_backend(url, clock=clock)
    assert isinstance(b, RedisBackend)
    await b.open()
    return b


@pytest.fixture(params=["server-clock", "fake-clock"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RedisBackend, RedisBackend]]:
    """Two handles on one fresh store: the waiting one, and another that enqueues."""
    clock: Clock = SYSTEM_CLOCK if request.param == "server-clock" else FakeClock()
    url = fresh_url()
    waiter, other = await opened(url, clock), await opened(url, clock)
    try:
        yield waiter, other
    finally:
        await waiter.close()
        await other.close()


@pytest.fixture
def raw() -> Iterator[Redis]:
    with Redis.from_url(server_url("redis")) as client:
        yield client


async def parked(raw: Redis, backend: RedisBackend) -> None:
    """Wait until ``backend`` is registered as a parked waiter."""
    deadline = asyncio.get_running_loop().time() + 5
    while not raw.hexists(backend.keys.waiters, backend.connection.waiter):
        assert asyncio.get_running_loop().time() < deadline, "the claim never parked"
        await asyncio.sleep(0.01)


async def test_a_waiting_claim_is_woken_by_an_enqueue_from_another_handle(
    pair: tuple[RedisBackend, RedisBackend], raw: Redis
) -> None:
    # Given a claim parked with nothing to claim
    waiter, other = pair
    claim = asyncio.create_task(waiter.claim("w1", EVERYTHING, 5, 30.0, wait=10.0))
    await parked(raw, waiter)

    # When another handle enqueues a job
    [result] = await other.enqueue([new_job()])

    # Then the claim returns that job, leased to its worker, long before its wait is over
    [job] = await asyncio.wait_for(claim, 2.0)
    assert job.id == result.id and job.worker_id == "w1" and job.lease_token
    record = await other.get(job.id)
    assert record is not None and record.state is State.RUNNING
    assert record.lease_token == job.lease_token


async def test_a_waiting_claim_returns_nothing_after_its_wait(
    pair: tuple[RedisBackend, RedisBackend],
) -> None:
    waiter, other = pair
    await other.enqueue([new_job(queue="jobs")])  # work it does not serve
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await waiter.claim("w1", MAIL, 5, 30.0, wait=0.3) == []
    assert 0.25 <= loop.time() - started < 2.0
    # The other queue's job was left alone
    assert len(await other.claim("w2", EVERYTHING, 5, 30.0)) == 1


async def test_a_claim_cancelled_while_parked_leaves_no_job_running(
    pair: tuple[RedisBackend, RedisBackend], raw: Redis
) -> None:
    # Given a parked claim
    waiter, other = pair
    claim = asyncio.create_task(waiter.claim("w1", EVERYTHING, 5, 30.0, wait=10.0))
    await parked(raw, waiter)

    # When it is cancelled, and work arrives right after
    claim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(claim, 2.0)
    [result] = await other.enqueue([new_job()])

    # Then the work is the next claimer's: nobody holds it
    [job] = await other.claim("w2", EVERYTHING, 5, 30.0)
    assert job.id == result.id and job.worker_id == "w2"


async def test_a_claim_cancelled_with_its_claim_in_flight_releases_what_it_leased(
    raw: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a parked claim whose pipelined claim will lease a job and then be held up just
    # before it returns (the reply is in, the caller does not have it yet)
    url = fresh_url()
    waiter, other = await opened(url, SYSTEM_CLOCK), await opened(url, SYSTEM_CLOCK)
    entered, go_on = asyncio.Event(), asyncio.Event()
    decode = claiming.claimed

    async def held_up(conn: RedisConnection, reply: list[Any], *how: str) -> Claimed:
        if len(reply) > 2:  # it leased something
            entered.set()
            await go_on.wait()
        return await decode(conn, reply, *how)

    monkeypatch.setattr(claiming, "claimed", held_up)
    try:
        claim = asyncio.create_task(waiter.claim("w1", EVERYTHING, 5, 30.0, wait=10.0))
        await parked(raw, waiter)
        [result] = await other.enqueue([new_job()])
        await asyncio.wait_for(entered.wait(), 5.0)
        record = await other.get(result.id)
        assert record is not None and record.state is State.RUNNING  # leased in Redis

        # When the caller is cancelled right then
        claim.cancel()
        await asyncio.sleep(0.05)
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(claim, 5.0)

        # Then the job it leased is back to ready, its attempt returned, for anyone to claim
        record = await other.get(result.id)
        assert record is not None and record.state is State.READY and record.attempts == 0
        [job] = await other.claim("w2", EVERYTHING, 5, 30.0)
        assert job.id == result.id and job.worker_id == "w2"
    finally:
        await waiter.close()
        await other.close()


async def test_a_waiting_claim_leaves_nothing_for_the_next_claim(
    pair: tuple[RedisBackend, RedisBackend], raw: Redis
) -> None:
    # Given a waiting claim for mail that was woken and returned its job
    waiter, other = pair
    claim = asyncio.create_task(waiter.claim("w1", MAIL, 1, 30.0, wait=10.0))
    await parked(raw, waiter)
    [mail, report] = await other.enqueue([new_job(queue="mail"), new_job(queue="reports")])
    [got] = await asyncio.wait_for(claim, 2.0)
    assert got.id == mail.id

    # and one that waited for nothing and timed out
    assert await waiter.claim("w1", MAIL, 5, 30.0, wait=0.2) == []

    # When the same handle claims again, for another worker and routing
    claimed = await waiter.claim("w3", Routing(queues=("reports",)), 5, 30.0)

    # Then it gets exactly what that claim asks for, nothing held over from before
    assert [(j.id, j.worker_id) for j in claimed] == [(report.id, "w3")]
    assert await waiter.claim("w1", EVERYTHING, 5, 30.0) == []
    assert await waiter.complete(Lease(got.id, got.lease_token or ""), None)
