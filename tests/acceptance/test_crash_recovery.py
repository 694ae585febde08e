"""A worker SIGKILLed mid-job: its jobs come back when their leases expire, none is lost."""

from __future__ import annotations

import signal

import pytest

from conveyor import State

from .harness import Cluster, backend_call

LEASE = 2.0


@pytest.mark.slow
def test_sigkill_mid_job_jobs_are_recovered_by_the_next_worker(cluster: Cluster) -> None:
    # Given 20 jobs of 1.5 s and a worker running 10 of them
    ids = cluster.enqueue_work(20, seconds=1.5)
    victim = cluster.start_worker("--concurrency", "10")
    cluster.wait_started(10, timeout=20)

    # When the worker is SIGKILLed in the middle of those jobs
    victim.send(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    ledger = cluster.ledger()
    in_flight = ledger.job_ids("start")
    assert len(in_flight) == 10, ledger.by_job("start")
    assert ledger.count("end") == 0, "the kill came after a job had finished; test premise broken"
    # the killed worker's jobs are still marked running: only their leases can tell.
    assert cluster.states(in_flight) == {State.RUNNING: 10}

    # And another worker starts on the same file
    rescuer = cluster.start_worker("--concurrency", "10")

    # Then every job completes exactly once, the orphans only after their lease expired,
    ledger = cluster.wait_ended(ids, timeout=30)
    cluster.check(ids).assert_exactly_once()
    assert set(ledger.by_pid("end")) == {rescuer.pid}
    starts: dict[str, list[float]] = {}
    for start in ledger.events("start"):
        starts.setdefault(start["job_id"], []).append(start["t"])
    for job_id in in_flight:
        first, second = sorted(starts[job_id])
        assert second - first >= LEASE - 0.1, (job_id, first, second)
    # and the store counts one recovery per orphan, none for the others.
    records = {job_id: cluster.job(job_id) for job_id in ids}
    for job_id, record in records.items():
        assert record.state is State.SUCCEEDED, record
        assert record.attempts == 1, record
        assert record.recoveries == (1 if job_id in in_flight else 0), record
    assert ledger.by_job("start") == {j: 2 if j in in_flight else 1 for j in ids}
    counters = backend_call(cluster.url, lambda b: b.admin.counters())
    assert counters["recovered"] == 10, counters

    rescuer.send(signal.SIGTERM)
    assert rescuer.wait(15) == 0, rescuer.output_tail()
