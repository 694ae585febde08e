"""Middleware, events, limits and `RateLimited` through a real worker on every backend.

The contract suite checks each backend call on its own; these run the features end to end,
in-process, on SQLite, Redis and PostgreSQL (the servers the test command starts), so a
backend that passes its contract but breaks a feature is caught too.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.contract.support import BACKEND_URLS

from conveyor import Conveyor, Event, RateLimited, State, Worker, correlation_id
from conveyor.limits import RATE_LIMITED_HEADER
from conveyor.settings import load_settings

STORES = ["sqlite", "redis", "postgres"]


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKEND_URLS[request.param](tmp_path)


def new_app(url: str) -> Conveyor:
    return Conveyor(url, settings=load_settings(max_retries=2))


@pytest.fixture
async def app(url: str) -> AsyncIterator[Conveyor]:
    a = new_app(url)
    try:
        yield a
    finally:
        await a.aclose()


async def run_workers(
    apps: list[Conveyor], until: Callable[[], Any], timeout: float = 30
) -> list[Worker]:
    """Run one worker per app until ``until()`` (awaited if async) is true."""
    workers = [Worker(a, concurrency=4, reaper=False, poll_interval=0.05) for a in apps]
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        deadline = time.monotonic() + timeout
        while True:
            done = until()
            if asyncio.iscoroutine(done):
                done = await done
            if done:
                break
            assert time.monotonic() < deadline, "timed out waiting for the jobs"
            assert not any(r.done() for r in runs), [r.exception() for r in runs if r.done()]
            await asyncio.sleep(0.05)
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*runs), 20)
    return workers


async def all_final(app: Conveyor) -> bool:
    stats = await app.backend.admin.stats()
    return not any(
        n
        for row in stats
        for s, n in row.counts.items()
        if s in (State.SCHEDULED, State.READY, State.RUNNING)
    )


async def test_middleware_wraps_jobs_and_the_correlation_id_reaches_child_jobs(
    app: Conveyor,
) -> None:
    seen: list[str] = []
    ids: dict[str, str | None] = {}

    @app.middleware
    async def outer(ctx: Any, call_next: Any) -> Any:
        seen.append(f"before {ctx.task.name.rsplit('.', 1)[-1]}")
        try:
            return await call_next()
        finally:
            seen.append(f"after {ctx.task.name.rsplit('.', 1)[-1]}")

    @app.task
    async def child() -> None:
        ids["child"] = correlation_id()

    @app.task
    async def parent() -> None:
        ids["parent"] = correlation_id()
        await child.enqueue_async()

    handle = await parent.enqueue_async()
    await run_workers([app], lambda: "child" in ids)

    assert ids["parent"] is not None and ids["child"] == ids["parent"]
    # The child may start on another slot before the parent's middleware has
    # finished, so only each job's own order is fixed.
    assert seen[0] == "before parent"
    assert sorted(seen) == ["after child", "after parent", "before child", "before parent"]
    assert seen.index("before parent") < seen.index("after parent")
    assert seen.index("before child") < seen.index("after child")
    assert (await app.backend.get(handle.id)).state is State.SUCCEEDED  # type: ignore[union-attr]


class OrderPlaced(Event):
    order_id: int


async def test_a_queued_listener_becomes_a_job_and_runs(app: Conveyor) -> None:
    heard: list[int] = []

    @app.listener(OrderPlaced, queued=True, queue="events")
    async def send_receipt(event: OrderPlaced) -> None:
        heard.append(event.order_id)

    await app.dispatch_async(OrderPlaced(order_id=42))
    stats = {row.queue for row in await app.backend.admin.stats()}
    assert "events" in stats
    await run_workers([app], lambda: heard)
    assert heard == [42]


async def test_a_rate_limit_holds_across_two_workers_without_using_attempts(url: str) -> None:
    apps = [new_app(url), new_app(url)]
    starts: list[float] = []
    for a in apps:

        @a.task(name="features.limited", rate_limit="4/s", retries=0)
        async def limited(n: int) -> None:
            starts.append(time.monotonic())

    try:
        handles = apps[0].get_task("features.limited").enqueue_many([(n,) for n in range(10)])
        await run_workers(apps, lambda: all_final(apps[0]))
        assert len(starts) == 10
        starts.sort()
        assert all(b - a >= 1.0 for a, b in zip(starts, starts[4:], strict=False))
        for h in handles:
            info = await apps[0].backend.get(h.id)
            assert info is not None and info.state is State.SUCCEEDED and info.attempts == 1
    finally:
        for a in apps:
            await a.aclose()


async def test_max_concurrency_per_key_across_two_workers(url: str) -> None:
    apps = [new_app(url), new_app(url)]
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)
    for a in apps:

        @a.task(
            name="features.per_account",
            max_concurrency=1,
            concurrency_key=lambda account, n: account,
        )
        async def per_account(account: str, n: int) -> None:
            running[account] += 1
            peak[account] = max(peak[account], running[account])
            await asyncio.sleep(0.05)
            running[account] -= 1

    try:
        task = apps[0].get_task("features.per_account")
        task.enqueue_many([(acct, n) for n in range(4) for acct in ("a", "b")])
        await run_workers(apps, lambda: all_final(apps[0]))
        assert dict(peak) == {"a": 1, "b": 1}
    finally:
        for a in apps:
            await a.aclose()


async def test_rate_limited_waits_in_storage_and_keeps_its_attempts(app: Conveyor) -> None:
    calls: list[float] = []

    @app.task(retries=0)
    async def fetch() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RateLimited(retry_after=0.2)
        return "ok"

    handle = await fetch.enqueue_async()
    await run_workers([app], lambda: all_final(app))

    info = await app.backend.get(handle.id)
    assert info is not None and info.state is State.SUCCEEDED and info.attempts == 1
    assert info.headers[RATE_LIMITED_HEADER] == 2
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(calls))
