"""``conveyor_store_server_info`` on the real cluster: under ``conveyor run --metrics-port``,
a worker's own ``/metrics`` and the supervisor's both name each shard's primary and replica,
and the supervisor serves each series once, from its own read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.crc import key_slot
from tests.acceptance.harness import Cluster, wait_for
from tests.acceptance.supervised import Supervised
from tests.acceptance.test_metrics import get
from tests.integration.redis_server import free_port

from conveyor.backends.redis.shards import parse_layout
from conveyor.supervisor.metrics import PORTS_DIR

from .cluster_server import RedisClusterServers
from .conftest import SHARDS, fresh_url

FAMILY = "conveyor_store_server_info"


def series(text: str) -> list[dict[str, str]]:
    """The label sets of the family's samples on a ``/metrics`` page (each must be 1)."""
    out = []
    for family in text_string_to_metric_families(text):
        if family.name == FAMILY:
            assert all(s.value == 1 for s in family.samples), family.samples
            out += [dict(s.labels) for s in family.samples]
    return out


def placed(servers: RedisClusterServers, url: str) -> set[tuple[str, str, str]]:
    """(role, address, shard) of every node serving the store's shards now, read from the
    nodes themselves: the primary owning each shard's slot, and the replicas that primary
    reports in INFO replication."""
    out = set()
    for shard, tag in enumerate(parse_layout(url).tags):
        primary = servers.node_for_slot(key_slot(("{" + tag + "}").encode()))
        out.add(("shard-primary", f"127.0.0.1:{primary.port}", str(shard)))
        with primary.client() as c:
            info = c.info("replication")
        for n in range(int(info.get("connected_slaves", 0))):
            entry = info[f"slave{n}"]
            out.add(("shard-replica", f"{entry['ip']}:{entry['port']}", str(shard)))
    return out


def as_set(labels: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    assert all(ls["service"] == "" for ls in labels), labels
    return {(ls["role"], ls["address"], ls["shard"]) for ls in labels}


@pytest.fixture
def harness(tmp_path: Path, redis_cluster: RedisClusterServers) -> Iterator[Cluster]:
    """The acceptance harness on a new three-shard store; its processes killed after."""
    c = Cluster(tmp_path, fresh_url(redis_cluster, SHARDS))
    try:
        yield c
    finally:
        c.close()


@pytest.mark.timeout(120)
def test_a_worker_and_the_supervisor_name_every_shards_nodes(
    harness: Cluster, redis_cluster: RedisClusterServers
) -> None:
    # Given `conveyor run` with one worker on a store of three shards, serving metrics
    port = free_port()
    sup = Supervised(
        harness, "jobs", env={"JOBS_WORKER_PROCESSES": "1", "SUPERVISOR_METRICS_PORT": str(port)}
    )
    try:
        [pid] = sup.wait_workers(1)
        ports = harness.dir / "run" / PORTS_DIR
        worker_port = wait_for(
            lambda: (ports / str(pid)).is_file() and int((ports / str(pid)).read_text()),
            timeout=30,
            what="the worker to publish its metrics port",
            detail=sup.output_tail,
        )

        # When the worker's own page and the supervisor's are scraped
        def both() -> tuple[list[dict[str, str]], list[dict[str, str]]] | None:
            want = placed(redis_cluster, harness.url)
            own = series(get(worker_port, "/metrics")[1])
            served = series(get(port, "/metrics")[1])
            return (own, served) if as_set(own) == as_set(served) == want else None

        own, served = wait_for(
            both,
            timeout=60,
            what=f"{FAMILY} on both pages to match the cluster's nodes",
            interval=0.5,
            detail=lambda: (
                f"{sup.output_tail()}\n{placed(redis_cluster, harness.url)}\n"
                f"{get(worker_port, '/metrics')[1]}\n{get(port, '/metrics')[1]}"
            ),
        )

        # Then both name each of the three shards' primary and its replica, exactly,
        roles = sorted((ls["shard"], ls["role"]) for ls in own)
        assert roles == sorted(
            (str(s), r) for s in range(SHARDS) for r in ("shard-primary", "shard-replica")
        ), own
        # and the supervisor serves each once, its own read: no worker's copy passes through.
        assert len(served) == len(own) == 2 * SHARDS
        assert not [ls for ls in served if "worker" in ls or "pool" in ls], served
    finally:
        sup.close()
