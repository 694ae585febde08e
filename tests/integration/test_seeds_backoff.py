"""The worker-wide error backoff (the Redis worker seed's): after a failed fetch, a worker
waits ``WORKER_ERROR_BACKOFF`` seconds, doubling up to ``WORKER_ERROR_BACKOFF_MAX``. Shown
on a real redis-server that goes away under a running worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import Conveyor, Worker
from conveyor.settings import load_settings

from .redis_server import RedisServer


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.timeout(60)
async def test_a_failed_fetch_waits_the_workers_error_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    settings = load_settings(worker_error_backoff=0.4, worker_error_backoff_max=0.8)
    app = Conveyor(f"{server.url}?prefix=errbackoff", settings=settings)
    worker = Worker(app, concurrency=1, reaper=False, poll_interval=0.1)
    running = asyncio.create_task(worker.run())
    try:

        def claim_lines() -> list[str]:
            return [r.getMessage() for r in caplog.records if "claiming jobs" in r.getMessage()]

        await until(lambda: worker.heartbeat_age() is not None, 15, "the worker to start")
        # When the store goes away under the idle worker
        with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
            server.stop()
            await until(lambda: len(claim_lines()) >= 3, 20, "two back-off steps")
        # Then it waits 0.4 s, then 0.8 s (the cap), not the built-in 0.1 s steps
        lines = claim_lines()
        assert "retrying in 0.4s" in lines[0], lines
        assert "retrying in 0.8s" in lines[1], lines
        assert "keeps failing: retrying every 0.8s" in lines[2], lines
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
        server.stop()
        await app.aclose()
