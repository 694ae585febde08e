"""Ordered queues (Laravel's ``--queue=high,low``) through a real worker on every store.

A worker with ``WORKER_QUEUES_ORDERED`` takes from the first of its queues that has a ready
job; without it the queues are a filter and the oldest job runs first. Both are run on
SQLite, Redis and PostgreSQL (the servers the test command starts).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.contract.support import BACKEND_URLS

from conveyor import Conveyor, Worker
from conveyor.settings import load_settings

STORES = ["sqlite", "redis", "postgres"]


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKEND_URLS[request.param](tmp_path)


async def run_in_order(url: str, *, ordered: bool) -> list[str]:
    """Enqueue three ``low`` jobs, then one ``high``; run them with one slot; the order."""
    app = Conveyor(
        url,
        settings=load_settings(worker_queues="high,low", worker_queues_ordered=ordered),
    )
    ran: list[str] = []

    @app.task(name="record")
    async def record(label: str) -> None:
        ran.append(label)

    try:
        # Given three low jobs queued before a high one
        for n in range(3):
            await record.options(queue="low").enqueue_async(f"low-{n}")
        await record.options(queue="high").enqueue_async("high")
        # When a worker with one slot drains the queues
        worker = Worker(app, concurrency=1, burst=True, reaper=False, poll_interval=0.05)
        assert await asyncio.wait_for(worker.run(), 30) == 0
    finally:
        await app.aclose()
    return ran


async def test_an_ordered_worker_takes_the_first_queue_first(url: str) -> None:
    # Then the high job runs first, and the low ones in their order after it
    assert await run_in_order(url, ordered=True) == ["high", "low-0", "low-1", "low-2"]


async def test_without_order_the_queues_are_only_a_filter(url: str) -> None:
    # Then the oldest job runs first, whatever its queue (what --queues always did)
    assert await run_in_order(url, ordered=False) == ["low-0", "low-1", "low-2", "high"]
