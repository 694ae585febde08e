"""Two worker processes on one SQLite file drain a bulk enqueue exactly once."""

from __future__ import annotations

import signal

import pytest

from conveyor import State

from .harness import Cluster, wait_for

JOBS = 5_000


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_drain_5000_jobs_exactly_once(cluster: Cluster) -> None:
    # Given two idle workers on the same SQLite file, both in the worker registry
    first = cluster.start_worker("--concurrency", "20")
    second = cluster.start_worker("--concurrency", "20")
    wait_for(
        lambda: len(cluster.workers()) >= 2,
        timeout=20,
        what="both workers to register",
        detail=cluster.outputs,
    )

    # When 5,000 jobs are enqueued in bulk
    ids = cluster.enqueue_work(JOBS)
    assert len(set(ids)) == JOBS

    # Then every job runs to its end exactly once, nothing unexpected runs,
    # A generous deadline: every ledger record is fsynced, and a loaded machine is slow.
    ledger = cluster.wait_ended(ids, timeout=240)
    cluster.check(ids).assert_exactly_once()
    # both workers took a share,
    per_worker = ledger.by_pid("end")
    assert set(per_worker) == {first.pid, second.pid}, per_worker
    assert min(per_worker.values()) > 0, per_worker
    # and the store agrees: every job succeeded, none is left running.
    wait_for(
        lambda: cluster.counts() == {State.SUCCEEDED: JOBS},
        timeout=10,
        what="every job to be stored as succeeded",
        detail=lambda: str(cluster.counts()),
    )

    # When both get SIGTERM while idle, they exit cleanly.
    for proc in (first, second):
        proc.send(signal.SIGTERM)
    assert first.wait(15) == 0, first.output_tail()
    assert second.wait(15) == 0, second.output_tail()
