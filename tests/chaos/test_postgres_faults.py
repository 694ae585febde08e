"""PostgreSQL faults with real processes: a server restart while a producer and two worker
processes run, and enqueue while the server is down.

The server is the chaos package's own PostgreSQL (conftest.py: scripts/postgres.sh on its own
data directory and port, started once, stopped after the package), handed to each test
running. Without PostgreSQL on the machine the tests skip locally and fail under CI, like
every test that needs a server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from tests.acceptance.harness import Cluster, wait_for

from conveyor import BackendUnavailable, JobHandle, State, Task

from .support import PgServer, Producer, outage_figures, report, wait_all_succeeded


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_under_load_loses_no_committed_job(
    pg_cluster: Cluster, pg: PgServer, mode: str
) -> None:
    cluster, server = pg_cluster, pg
    # Given two workers and a producer running against PostgreSQL
    workers = [cluster.start_worker("--concurrency", "5") for _ in range(2)]
    producer = Producer(cluster)
    producer.start()
    try:
        wait_for(
            lambda: len(producer.acknowledged) >= 200,
            timeout=30,
            what="200 enqueues",
            detail=cluster.outputs,
        )

        # When the server restarts, cutting every connection
        server.restart(mode)
        restarted = len(producer.acknowledged)

        # Then producing resumes,
        wait_for(
            lambda: len(producer.acknowledged) >= restarted + 200,
            timeout=30,
            what="200 more enqueues after the restart",
            detail=cluster.outputs,
        )
    finally:
        producer.stop()

    # and every committed job runs to its end, the workers never having exited.
    ids = producer.acknowledged
    cluster.wait_ended(ids, timeout=60)
    verdict = cluster.check(ids)
    report(f"postgres restart [{mode}]: {outage_figures(producer, verdict)}")
    assert not verdict.lost, verdict.summary()
    # A job whose enqueue raised may still have committed just before the cut: it may run
    # (Jepsen's "recovered"), but nothing that was never enqueued may.
    assert set(verdict.unexpected) <= producer.failed, verdict.summary()
    assert all(w.alive() for w in workers), cluster.outputs()
    wait_all_succeeded(cluster, ids, maybe=producer.failed)


@pytest.mark.slow
def test_enqueue_while_the_server_is_down_fails_fast_then_recovers(
    pg_cluster: Cluster, pg: PgServer
) -> None:
    server = pg
    task = pg_cluster.app.get_task("ledger.work")
    assert task.enqueue(1).state() is State.READY  # connected, pools warm

    # When the server is down
    server.stop()

    # Then enqueues (sync and async) raise BackendUnavailable quickly, every time
    for _ in range(3):
        begin = time.monotonic()
        with pytest.raises(BackendUnavailable, match="unavailable"):
            task.enqueue(2)
        assert time.monotonic() - begin < 10.0

    async def enqueue_async() -> None:
        with pytest.raises(BackendUnavailable):
            await task.enqueue_async(3)

    begin = time.monotonic()
    asyncio.run(enqueue_async())
    assert time.monotonic() - begin < 15.0

    # And once it is back, the same app enqueues again without a restart
    server.start()
    handle = wait_for(lambda: _try_enqueue(task), timeout=20, what="an enqueue to succeed")
    assert handle is not None
    assert handle.state() is State.READY


def _try_enqueue(task: Task[Any, Any]) -> JobHandle[Any] | None:
    try:
        return task.enqueue(4)
    except BackendUnavailable:
        return None
