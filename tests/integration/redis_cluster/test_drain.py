"""The acceptance drain on a ``redis+cluster://`` store: two real worker processes
(``conveyor worker``) drain a bulk enqueue over queues on every shard, exactly once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster, wait_for
from tests.acceptance.ledger_app import WORK

from conveyor import State
from conveyor.backends.redis.shards import parse_layout

from .cluster_server import RedisClusterServers
from .conftest import fresh_url

JOBS = 1_500
QUEUES = [f"drain-{i}" for i in range(6)]


@pytest.fixture
def workers(tmp_path: Path, redis_cluster: RedisClusterServers) -> Iterator[Cluster]:
    """The acceptance harness on a new three-shard store; its processes killed after."""
    c = Cluster(tmp_path, fresh_url(redis_cluster, 3))
    try:
        yield c
    finally:
        c.close()


@pytest.mark.timeout(240)
def test_two_workers_drain_every_shard_exactly_once(workers: Cluster) -> None:
    # Given two idle workers on a store of three shards, both in the registry
    first = workers.start_worker("--concurrency", "20")
    second = workers.start_worker("--concurrency", "20")
    wait_for(
        lambda: len(workers.workers()) >= 2,
        timeout=30,
        what="both workers to register",
        detail=workers.outputs,
    )

    # When jobs of six queues, on all three shards, are enqueued in bulk
    layout = parse_layout(workers.url)
    assert {layout.of_queue(q) for q in QUEUES} == {0, 1, 2}
    task = workers.app.get_task(WORK)
    calls = [task.options(queue=QUEUES[i % len(QUEUES)]).call(i, 0.0) for i in range(JOBS)]
    ids = [h.id for h in workers.app.enqueue_many(calls)]
    assert len(set(ids)) == JOBS

    # Then every job runs to its end exactly once and nothing unexpected runs,
    ledger = workers.wait_ended(ids, timeout=180)
    workers.check(ids).assert_exactly_once()
    # both workers took a share,
    per_worker = ledger.by_pid("end")
    assert set(per_worker) == {first.pid, second.pid}, per_worker
    # and the store agrees: every job succeeded, none is left running.
    wait_for(
        lambda: workers.counts() == {State.SUCCEEDED: JOBS},
        timeout=20,
        what="every job to be stored as succeeded",
        detail=lambda: str(workers.counts()),
    )

    # When both get SIGTERM while idle, they exit cleanly.
    for proc in (first, second):
        proc.send(signal.SIGTERM)
    assert first.wait(20) == 0, first.output_tail()
    assert second.wait(20) == 0, second.output_tail()
