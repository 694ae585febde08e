"""Ordered queues (Laravel's ``--queue=high,low``) through a real worker on every store.

A worker with ``WORKER_QUEUES_ORDERED`` takes from the first of its queues that has a ready
job; without it the queues are a filter and the oldest job runs first. Both are run on
SQLite, Redis and PostgreSQL (the servers the test command starts), with one slot in burst
mode, and with two slots in a long-running worker that waits on the store when idle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def run_with_two_slots(url: str, *, ordered: bool) -> list[str]:
    """Two slots kept busy by ``block`` jobs while three ``low`` jobs, then a ``high`` one,
    are queued; the slots freed; then, once idle, one more ``low`` job. What started, in
    order."""
    app = Conveyor(
        url,
        settings=load_settings(worker_queues="high,low", worker_queues_ordered=ordered),
    )
    started: list[str] = []
    gate = asyncio.Event()

    @app.task(name="record")
    async def record(label: str) -> None:
        started.append(label)
        if label.startswith("block"):
            await gate.wait()

    # An hour between polls: only the store's wake-up can start the last job in time.
    worker = Worker(app, concurrency=2, reaper=False, poll_interval=3600)
    running = asyncio.create_task(worker.run())
    try:
        # Given both slots busy
        for n in range(2):
            await record.options(queue="low").enqueue_async(f"block-{n}")
        await until(lambda: len(started) == 2, "both slots to be busy")
        # When three low jobs, then a high one, are queued and the slots come free
        for n in range(3):
            await record.options(queue="low").enqueue_async(f"low-{n}")
        await record.options(queue="high").enqueue_async("high")
        gate.set()
        await until(lambda: len(started) == 6, "the queued jobs to start")
        # And, once the worker is idle (waiting on the store), one more low job is queued
        await until(lambda: worker.counts.processed == 6, "the queued jobs to finish")
        await record.options(queue="low").enqueue_async("late-low")
        await until(lambda: len(started) == 7, "the idle worker to wake for the low job")
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
        await app.aclose()
    return started


async def test_an_ordered_worker_with_two_slots_takes_the_first_queue_first(url: str) -> None:
    started = await run_with_two_slots(url, ordered=True)
    # Then the first freed slot took the high job, before the low ones queued earlier
    assert started[2] == "high", started
    assert started[3:] == ["low-0", "low-1", "low-2", "late-low"], started


async def test_with_two_slots_and_no_order_the_oldest_runs_first(url: str) -> None:
    started = await run_with_two_slots(url, ordered=False)
    assert started[2:] == ["low-0", "low-1", "low-2", "high", "late-low"], started
