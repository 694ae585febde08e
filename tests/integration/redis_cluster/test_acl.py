"""An ACL user with exactly the documented line (`shards.acl_line`, set on every node) runs
a ``redis+cluster://`` store; one lacking a command gets an error naming it."""

from __future__ import annotations

import os

import pytest

from conveyor.backends import create_backend
from conveyor.backends.redis.shards import acl_line
from conveyor.errors import BackendError
from conveyor.job import Lease, Routing, State

from .cluster_server import RedisClusterServers
from .test_cluster import job


def as_user(servers: RedisClusterServers, line: str, prefix: str) -> str:
    """Set the ACL ``line`` on every node; the store URL logging in as its user."""
    user = line.split()[2]
    for node in servers.alive():
        with node.client() as c:
            c.execute_command(*line.split())
    at = servers.url.replace("redis+cluster://", f"redis+cluster://{user}:pw@")
    return f"{at}?shards=3&prefix={prefix}"


async def test_the_documented_acl_line_runs_a_cluster_store(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given a user holding only the documented line, on every node
    prefix = f"acl-{os.urandom(4).hex()}"
    store = create_backend(as_user(redis_cluster, acl_line("app", prefix, login="pw"), prefix))
    await store.open()
    try:
        # When it enqueues on every shard, claims, completes and reads the store's state
        queues = [f"q{i}" for i in range(6)]
        ids = [r.id for r in await store.enqueue([job(q) for q in queues])]
        ids += [r.id for r in store.enqueue_sync([job("q0")])]
        done = set()
        for record in await store.claim("w", Routing(), 10, 30.0, wait=1.0):
            assert record.lease_token is not None
            assert await store.complete(Lease(record.id, record.lease_token), None)
            done.add(record.id)

        # Then everything worked, status included
        assert done == set(ids)
        stats = await store.admin.stats()
        assert sum(row.counts.get(State.SUCCEEDED, 0) for row in stats) == len(ids)
        lines = await store.admin.diagnostics()
        assert sum(line.startswith("topology: Redis Cluster shard") for line in lines) == 3
    finally:
        await store.close()


@pytest.mark.parametrize("missing", ["hsetnx", "command"])
async def test_a_user_lacking_a_command_is_told_which(
    redis_cluster: RedisClusterServers, missing: str
) -> None:
    prefix = f"acl-{os.urandom(4).hex()}"
    line = acl_line(f"lacks-{missing}", prefix, login="pw").replace(f" +{missing}", "")
    store = create_backend(as_user(redis_cluster, line, prefix))
    with pytest.raises(BackendError, match=f"run the command '{missing}'.*ACL SETUSER"):
        await store.open()
    await store.close()
