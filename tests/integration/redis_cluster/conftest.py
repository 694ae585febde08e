"""One Redis Cluster for every test in this directory: six nodes (three primaries, three
replicas) on loopback, started once per test run and stopped at its end.

Each test gets a store of its own on it (a fresh ``?prefix=``), spread over three shards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from .cluster_server import RedisClusterServers

#: Shards of every test store: one per primary.
SHARDS = 3

#: Contract tests whose promise holds within one shard only (docs/redis.md, "Redis
#: Cluster"): run on a store of one shard, where it must hold exactly. Ordering across
#: queues (priority, FIFO) is per shard, and listing "newest first" across shards orders
#: by created_at, which the suite's frozen clock makes equal for every job.
ONE_SHARD = {
    "TestClaim::test_strict_priority_across_queues": "priority across queues of shards",
    "TestClaim::test_fifo_within_a_priority": "FIFO across queues of shards",
    "TestClaim::test_routing_glob_set_and_single_character": "FIFO across queues of shards",
    "TestRepair::test_query_newest_first_with_filters": "newest first at equal created_at",
}


#: The model check (`TestModel`) compares claim order across queues with the memory
#: store's single order, which a sharded store keeps per shard: it runs on stores of one
#: shard, where the cluster store's own routing (tokens naming the shard, fan-out reads
#: and changes) must still behave exactly like the reference.
MODEL_SHARDS = 1


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """The running cluster (skips locally without redis-server; fails under CI)."""
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


def fresh_url(servers: RedisClusterServers, shards: int = SHARDS) -> str:
    """The URL of a new, empty store on the cluster."""
    return f"{servers.url}?shards={shards}&prefix=t-{os.urandom(6).hex()}"


@pytest.fixture
def store_url(request: pytest.FixtureRequest, redis_cluster: RedisClusterServers) -> str:
    """A new, empty ``redis+cluster://`` store (the contract suite's fixture): three
    shards, or one for the tests in `ONE_SHARD`."""
    name = request.node.nodeid.rpartition(".py::")[2]
    return fresh_url(redis_cluster, 1 if name in ONE_SHARD else SHARDS)


@pytest.fixture
def new_store_url(redis_cluster: RedisClusterServers) -> Callable[[], str]:
    """Another new, empty store at each call (the contract suite's model check, on
    `MODEL_SHARDS` shards)."""
    return lambda: fresh_url(redis_cluster, MODEL_SHARDS)
