"""Hostile tasks against real worker processes: a blocked event loop, a stop signal the
blocked loop cannot handle, a plain def job outliving the grace period, a sync timeout."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor, State
from conveyor.worker.state import EXIT_LOOP_BLOCKED, EXIT_STUCK_THREAD

from .harness import Cluster, wait_for
from .hostile_app import BLOCK, SYNC_SLOW, SYNC_STUCK, build_app

APP = "hostile_app:app"
#: Watchdog thresholds short enough for a test: warn after 0.5 s, exit 1 s past a timeout.
WATCHDOG = {"WORKER_LOOP_WARN": "0.5", "WORKER_LOOP_GRACE": "1"}


@pytest.fixture
def hostile(cluster: Cluster) -> Iterator[Conveyor]:
    """The hostile tasks' app on the cluster's store, for enqueueing."""
    app = build_app(cluster.url)
    try:
        yield app
    finally:
        app.close()


def wait_state(cluster: Cluster, job_id: str, state: State, timeout: float) -> None:
    wait_for(
        lambda: cluster.job(job_id).state is state,
        timeout=timeout,
        what=f"job {job_id} to be {state.value}",
        detail=cluster.outputs,
    )


@pytest.mark.slow
def test_a_task_blocking_the_loop_ends_its_worker_and_the_job_is_recovered(
    cluster: Cluster, hostile: Conveyor
) -> None:
    # Given an async task that blocks the event loop for 2 minutes under timeout=1
    job = hostile.get_task(BLOCK).enqueue(120)
    worker = cluster.start_worker("--concurrency", "2", env=WATCHDOG, app=APP)

    # Then the watchdog logs the job and the loop's stack, and ends the process with
    # code 4 once the stall passes the job's timeout plus the grace (about 2 s),
    assert worker.wait(30) == EXIT_LOOP_BLOCKED, worker.output_tail()
    out = worker.output()
    assert f"job {job.id} ({BLOCK})" in out
    assert "time.sleep(seconds)" in out  # the blocking line, from the loop's stack
    assert "use a plain `def` task" in out
    # and the job's lease, left to expire, lets the next worker recover and finish it.
    later = cluster.start_worker("--concurrency", "2", env=WATCHDOG, app=APP)
    wait_state(cluster, job.id, State.SUCCEEDED, timeout=30)
    later.send(signal.SIGTERM)
    assert later.wait(20) == 0, later.output_tail()
    ledger = cluster.ledger()
    assert ledger.by_job("start")[job.id] == 2 and ledger.by_job("end")[job.id] == 1


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sigterm_still_stops_a_worker_whose_loop_is_blocked(
    cluster: Cluster, hostile: Conveyor
) -> None:
    # Given a worker whose loop a job blocks, far from the job's own 300 s timeout
    hostile.get_task(BLOCK).options(timeout=300).enqueue(120)
    worker = cluster.start_worker("--grace-period", "1", env=WATCHDOG, app=APP)
    cluster.wait_started(1, timeout=20)

    # When it gets SIGTERM
    signalled = time.monotonic()
    worker.send(signal.SIGTERM)

    # Then it exits once the shutdown grace period is over, with code 4
    assert worker.wait(20) == EXIT_LOOP_BLOCKED, worker.output_tail()
    assert time.monotonic() - signalled < 15
    assert "stop signal" in worker.output()


@pytest.mark.slow
def test_a_sync_job_outliving_the_grace_period_does_not_run_twice(
    cluster: Cluster, hostile: Conveyor
) -> None:
    # Given a plain def job of 6 s and a worker with a 1 s grace period
    job = hostile.get_task(SYNC_SLOW).enqueue(6.0)
    first = cluster.start_worker("--grace-period", "1", app=APP)
    cluster.wait_started(1, timeout=20)

    # When the worker is stopped while the job's thread runs
    first.send(signal.SIGTERM)
    assert first.wait(15) == 0, first.output_tail()

    # Then the job was not released (its thread ended with the process), a later worker
    # recovers it once the lease expires, and its side effect happened exactly once.
    assert "still runs in its thread" in first.output()
    later = cluster.start_worker("--grace-period", "1", app=APP)
    wait_state(cluster, job.id, State.SUCCEEDED, timeout=40)
    later.send(signal.SIGTERM)
    assert later.wait(20) == 0, later.output_tail()
    ledger = cluster.ledger()
    assert ledger.by_job("end") == {job.id: 1}, ledger.records
    assert first.pid not in ledger.by_pid("end")


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_sync_timeout_recycles_the_worker_with_its_own_exit_code(
    cluster: Cluster, hostile: Conveyor
) -> None:
    job = hostile.get_task(SYNC_STUCK).enqueue()
    worker = cluster.start_worker(app=APP)
    # Non-zero, so `Restart=on-failure` and other supervisors restart it.
    assert worker.wait(30) == EXIT_STUCK_THREAD, worker.output_tail()
    record = cluster.job(job.id)
    assert record.state is State.DEAD and (record.last_error or "").startswith("timeout:")
