"""Redis faults with real processes: a server stopped or SIGKILLed under load and restarted,
enqueue while the server is down or frozen, and a worker cut off for longer than its lease.

The redis-server is the chaos package's own (conftest.py: own port and directory, appendonly
yes, fsync every second), handed to each test running; everything a test starts is stopped,
even on failure.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from tests.acceptance.harness import Cluster, backend_call, wait_for
from tests.integration.redis_server import RedisServer

from conveyor import BackendUnavailable, State

from .support import Producer, outage_figures, report, wait_all_succeeded

LEASE = 2.0  # the acceptance harness's FAST_ENV


def outage_seen(producer: Producer, cluster: Cluster) -> bool:
    """The producer got an error and a worker logged a failed Redis call."""
    return bool(producer.errors) and any(
        "Redis" in w.output() and "failed" in w.output() for w in cluster.processes
    )


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["stop", "sigkill"])
def test_server_restart_under_load_loses_no_acknowledged_job(
    redis_cluster: Cluster, redis: RedisServer, outage: str
) -> None:
    cluster = redis_cluster
    # Given two workers and a producer running against Redis
    workers = [cluster.start_worker("--concurrency", "5") for _ in range(2)]
    producer = Producer(cluster, batch=1)
    producer.start()
    try:
        wait_for(
            lambda: len(producer.acknowledged) >= 100,
            timeout=20,
            what="100 enqueues",
            detail=cluster.outputs,
        )

        # When Redis goes away (a stop writes its AOF and exits; SIGKILL writes nothing more)
        # until the producer and a worker have both run into the outage, then comes back
        if outage == "stop":
            redis.stop()
        else:
            redis.kill()
        wait_for(
            lambda: outage_seen(producer, cluster),
            timeout=20,
            what="the producer and a worker to see the outage",
            detail=cluster.outputs,
        )
        redis.start()
        before = len(producer.acknowledged)
        wait_for(
            lambda: len(producer.acknowledged) >= before + 100,
            timeout=20,
            what="enqueues to resume after the restart",
            detail=cluster.outputs,
        )
    finally:
        producer.stop()

    # Then the producer's errors named Redis, the workers kept running, and every
    # acknowledged job ran to its end and is stored as succeeded.
    assert all("Redis" in e for e in producer.errors), producer.errors[:5]
    ids = producer.acknowledged
    cluster.wait_ended(ids, timeout=60)
    verdict = cluster.check(ids)
    report(f"redis restart [{outage}]: {outage_figures(producer, verdict)}")
    assert not verdict.lost, verdict.summary()
    # A job may run although its enqueue reported an error (Redis stored it, the reply was
    # lost in the outage): Jepsen's "recovered". Anything else unexpected is a bug.
    assert set(verdict.unexpected) <= producer.failed, verdict.summary()
    assert all(w.alive() for w in workers), cluster.outputs()
    wait_all_succeeded(cluster, ids, maybe=producer.failed)


def test_enqueue_while_redis_is_down_fails_fast(redis_cluster: Cluster, redis: RedisServer) -> None:
    server = redis
    task = redis_cluster.app.get_task("ledger.work")
    task.enqueue(1)  # connected and working

    # Stopped: connection refused, reported at once
    server.stop()
    begin = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot reach Redis"):
        task.enqueue(2)
    assert time.monotonic() - begin < 5.0

    # Frozen (accepts connections, never answers): bounded by the socket timeout
    server.start()
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        begin = time.monotonic()
        with pytest.raises(BackendUnavailable, match="did not answer"):
            task.enqueue(3)
        assert time.monotonic() - begin < 15.0
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)

    # And once Redis answers again, enqueue works on the same app
    task.enqueue(4)


@pytest.mark.slow
def test_a_worker_cut_off_past_its_lease_is_fenced(redis_cluster: Cluster) -> None:
    cluster = redis_cluster
    # Given a worker running 5 jobs of 3 s
    ids = cluster.enqueue_work(5, seconds=3.0)
    zombie = cluster.start_worker("--concurrency", "5")
    cluster.wait_started(5, timeout=20)

    # When it is frozen for longer than its lease, and another worker takes over
    zombie.send(signal.SIGSTOP)
    try:
        rescuer = cluster.start_worker("--concurrency", "5")
        wait_for(
            lambda: (
                len([e for e in cluster.ledger().events("end") if e["pid"] == rescuer.pid]) == 5
            ),
            timeout=30,
            what="the rescuer to finish all 5 jobs",
            detail=cluster.outputs,
        )
    finally:
        zombie.send(signal.SIGCONT)

    # Then the zombie's late reports are rejected and counted (or it notices the lost
    # leases first and cancels), and the stored results are the rescuer's.
    wait_for(
        lambda: "rejected" in zombie.output() or "lost its lease" in zombie.output(),
        timeout=15,
        what="the zombie to learn it lost its leases",
        detail=cluster.outputs,
    )
    for job_id in ids:
        record = cluster.job(job_id)
        assert record.state is State.SUCCEEDED
        assert record.recoveries == 1
        assert f"-{rescuer.pid}-" in (record.worker_id or ""), record
    counters = backend_call(cluster.url, lambda b: b.admin.counters())
    assert counters["recovered"] == 5, counters
    if "rejected" in zombie.output():
        assert counters["fenced"] >= 1, counters
    assert zombie.alive()
