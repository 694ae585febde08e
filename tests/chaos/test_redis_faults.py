"""Redis faults with real processes: a server restart under load, enqueue while the server
is down or frozen, and a worker cut off for longer than its lease.

Each test starts its own redis-server (own port and directory, appendonly yes) and stops
everything it started, even on failure.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster, backend_call, wait_for
from tests.integration.redis_server import RedisServer

from conveyor import BackendUnavailable, State

LEASE = 2.0  # the acceptance harness's FAST_ENV


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis")
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def cluster(tmp_path: Path, server: RedisServer) -> Iterator[Cluster]:
    c = Cluster(tmp_path, f"{server.url}?prefix=chaos-{os.urandom(4).hex()}")
    try:
        yield c
    finally:
        c.close()


class Producer(threading.Thread):
    """Enqueues one job at a time until stopped; keeps the ids Redis acknowledged."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.task = cluster.app.get_task("ledger.work")
        self.acknowledged: list[str] = []
        self.errors: list[str] = []
        self.failed_args: set[int] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            n += 1
            try:
                self.acknowledged.append(self.task.enqueue(n).id)
            except BackendUnavailable as exc:
                self.errors.append(str(exc))
                self.failed_args.add(n)
                self.halt.wait(0.05)
            self.halt.wait(0.005)


@pytest.mark.slow
def test_server_restart_under_load_loses_no_acknowledged_job(
    cluster: Cluster, server: RedisServer
) -> None:
    # Given two workers and a producer running against Redis
    workers = [cluster.start_worker("--concurrency", "5") for _ in range(2)]
    producer = Producer(cluster)
    producer.start()
    try:
        wait_for(lambda: len(producer.acknowledged) >= 100, timeout=20, what="100 enqueues",
                 detail=cluster.outputs)

        # When Redis stops (gracefully: its AOF is written) and comes back 2 s later
        server.stop()
        time.sleep(2.0)  # the outage itself is what is under test
        server.start()
        before = len(producer.acknowledged)
        wait_for(lambda: len(producer.acknowledged) >= before + 100, timeout=20,
                 what="enqueues to resume after the restart", detail=cluster.outputs)
    finally:
        producer.halt.set()
        producer.join(10)

    # Then the producer saw clear errors while Redis was down, the workers logged the
    # outage and kept running, and every acknowledged job ran to its end.
    assert producer.errors and all("Redis" in e for e in producer.errors)
    cluster.wait_ended(producer.acknowledged, timeout=60)
    verdict = cluster.check(producer.acknowledged)
    assert not verdict.lost, verdict.summary()
    # A job may run although its enqueue reported an error (Redis stored it, the reply was
    # lost in the shutdown): Jepsen's "recovered". Anything else unexpected is a bug.
    ran_args = {e["job_id"]: e["n"] for e in cluster.ledger().events("start")}
    assert {ran_args[j] for j in verdict.unexpected} <= producer.failed_args, verdict.summary()
    assert all(w.alive for w in workers), cluster.outputs()
    assert any("Redis" in w.output() and "failed" in w.output() for w in workers), (
        cluster.outputs()
    )


def test_enqueue_while_redis_is_down_fails_fast(cluster: Cluster, server: RedisServer) -> None:
    task = cluster.app.get_task("ledger.work")
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
def test_a_worker_cut_off_past_its_lease_is_fenced(cluster: Cluster) -> None:
    # Given a worker running 5 jobs of 3 s
    ids = cluster.enqueue_work(5, seconds=3.0)
    zombie = cluster.start_worker("--concurrency", "5")
    cluster.wait_started(5, timeout=20)

    # When it is frozen for longer than its lease, and another worker takes over
    zombie.send(signal.SIGSTOP)
    try:
        rescuer = cluster.start_worker("--concurrency", "5")
        wait_for(
            lambda: len([e for e in cluster.ledger().events("end") if e["pid"] == rescuer.pid])
            == 5,
            timeout=30, what="the rescuer to finish all 5 jobs", detail=cluster.outputs,
        )
    finally:
        zombie.send(signal.SIGCONT)

    # Then the zombie's late reports are rejected and counted (or it notices the lost
    # leases first and cancels), and the stored results are the rescuer's.
    wait_for(
        lambda: "rejected" in zombie.output() or "lost its lease" in zombie.output(),
        timeout=15, what="the zombie to learn it lost its leases", detail=cluster.outputs,
    )
    for job_id in ids:
        record = cluster.job(job_id)
        assert record.state is State.SUCCEEDED
        assert record.recoveries == 1
        assert f"-{rescuer.pid}-" in (record.worker_id or ""), record
    counters = backend_call(cluster.url, lambda b: b.counters())
    assert counters["recovered"] == 5, counters
    if "rejected" in zombie.output():
        assert counters["fenced"] >= 1, counters
    assert zombie.alive
