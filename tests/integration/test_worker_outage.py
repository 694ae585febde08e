"""A store outage on a real redis-server: the worker's back-off holds, whatever else wakes it.

Before: once a running job ended during the outage, the wake-up it sent was never cleared on
the claim's error path, and the back-off became a busy loop (about 800 claims and warnings
a second, a whole core).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, Worker
from conveyor.job import JobRecord

from .redis_server import RedisServer


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.timeout(90)
async def test_claim_backoff_holds_when_a_job_ends_during_an_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    app = Conveyor(f"{server.url}?prefix=outage")
    try:
        # Given a worker running one job on a real Redis
        @app.task(name="slow")
        async def slow() -> None:
            await asyncio.sleep(0.5)

        await slow.enqueue_async()
        worker = Worker(app, concurrency=2, lease_seconds=1.0, reaper=False, poll_interval=0.1)
        claims = 0
        backend = app.backend
        real_claim = backend.claim

        async def counted(*args: Any, **kwargs: Any) -> list[JobRecord]:
            nonlocal claims
            claims += 1
            return await real_claim(*args, **kwargs)

        backend.claim = counted  # type: ignore[method-assign]
        running = asyncio.create_task(worker.run())
        await until(lambda: worker.stats().running == 1, 15, "the job to start")

        # When the server goes away and the job ends meanwhile (its report gives up)
        with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
            server.stop()
            await until(lambda: worker.stats().running == 0, 15, "the job to end")
            before = claims
            await asyncio.sleep(3.0)
            during = claims - before

        # Then the claims keep backing off (0.1, 0.2, 0.4, 0.8, 1.6 s...): a handful in 3 s,
        # not thousands, and the log has one line per back-off step, not one per claim.
        assert during <= 10, f"{during} claims in 3 s during the outage"
        claim_lines = [r for r in caplog.records if "claiming jobs" in r.getMessage()]
        assert 1 <= len(claim_lines) <= 10, [r.getMessage() for r in claim_lines]

        worker.stop()
        await asyncio.wait_for(running, 30)
    finally:
        server.stop()
        await app.aclose()
