"""SIGTERM and SIGINT: finish running jobs, release what outlives the grace period, exit."""

from __future__ import annotations

import signal
import time

import pytest

from conveyor import State

from .harness import Cluster

#: Long enough that a lease expiry cannot explain a job being ready again.
LONG_LEASE = {"LEASE_SECONDS": "30"}


@pytest.mark.slow
def test_sigterm_lets_running_jobs_finish_and_exits_0(cluster: Cluster) -> None:
    # Given 10 one-second jobs and a worker running 5 of them
    ids = cluster.enqueue_work(10, seconds=1.0)
    worker = cluster.start_worker("--concurrency", "5", "--grace-period", "20")
    started = cluster.wait_started(5, timeout=20).job_ids("start")

    # When it gets SIGTERM
    worker.send(signal.SIGTERM)

    # Then it finishes the running jobs and exits with code 0,
    assert worker.wait(15) == 0, worker.output_tail()
    ledger = cluster.ledger()
    assert ledger.job_ids("end") == started
    assert max(ledger.by_job("end").values()) == 1
    # claims nothing new after the signal, and leaves nothing running.
    assert ledger.job_ids("start") == started
    assert cluster.states(started) == {State.SUCCEEDED: 5}
    assert cluster.states(set(ids) - started) == {State.READY: 5}
    assert State.RUNNING not in cluster.counts()
    assert cluster.workers() == []

    # When a later worker drains the rest, nothing was lost and nothing ran twice.
    later = cluster.start_worker("--concurrency", "5", "--burst")
    assert later.wait(30) == 0, later.output_tail()
    cluster.check(ids).assert_exactly_once()


@pytest.mark.slow
def test_jobs_outliving_the_grace_period_are_released_at_once(cluster: Cluster) -> None:
    # Given 3 jobs of 4 s, a 30 s lease, and a worker with a 1 s grace period running them
    ids = cluster.enqueue_work(3, seconds=4.0)
    worker = cluster.start_worker(
        "--concurrency",
        "3",
        "--grace-period",
        "1",
        env=LONG_LEASE,
    )
    cluster.wait_started(3, timeout=20)

    # When it gets SIGTERM
    signalled = time.monotonic()
    worker.send(signal.SIGTERM)

    # Then it exits 0 once the grace period is over, not when the jobs end,
    assert worker.wait(10) == 0, worker.output_tail()
    assert time.monotonic() - signalled < 4.0, worker.output_tail()
    # and the unfinished jobs are ready again at once (their leases had 25 s left),
    # with the interrupted attempt given back.
    assert cluster.ledger().count("end") == 0
    for job_id in ids:
        record = cluster.job(job_id)
        assert record.state is State.READY, record
        assert record.attempts == 0, record
        assert record.recoveries == 0, record

    # When a later worker runs, it completes them: nothing lost, each finished once.
    later = cluster.start_worker("--concurrency", "3", "--burst", env=LONG_LEASE)
    assert later.wait(30) == 0, later.output_tail()
    cluster.check(ids).assert_exactly_once()
    assert cluster.states(ids) == {State.SUCCEEDED: 3}
    assert cluster.ledger().by_job("start") == {j: 2 for j in ids}


@pytest.mark.slow
@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_exits_at_once_and_releases_jobs(
    cluster: Cluster, second: signal.Signals
) -> None:
    # Given a worker running 3 jobs of 30 s, with a 30 s grace period and 30 s leases
    ids = cluster.enqueue_work(3, seconds=30.0)
    worker = cluster.start_worker(
        "--concurrency",
        "3",
        "--grace-period",
        "30",
        env=LONG_LEASE,
    )
    cluster.wait_started(3, timeout=20)

    # When it gets SIGTERM, starts its graceful stop, then gets a second signal
    worker.send(signal.SIGTERM)
    cluster.wait_output(worker, "received SIGTERM", timeout=10)
    signalled = time.monotonic()
    worker.send(second)

    # Then it exits at once with code 1,
    assert worker.wait(10) == 1, worker.output_tail()
    assert time.monotonic() - signalled < 3.0, worker.output_tail()
    # and the jobs it was running are back to ready, not left to their leases.
    assert cluster.ledger().count("end") == 0
    for job_id in ids:
        record = cluster.job(job_id)
        assert record.state is State.READY, record
        assert record.attempts == 0, record
