"""``conveyor_store_server_info`` on real servers: a worker's ``/metrics`` names the Sentinel
service, its sentinels, the primary and the replica, and the new primary after a failover;
a ``redis://`` URL shows its one server (and ``Admin.servers`` a replica as one); stores
that are not a set of servers (SQLite, PostgreSQL) have no such family."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from redis.exceptions import NoPermissionError
from tests.acceptance.harness import Cluster, wait_for
from tests.acceptance.test_metrics import get
from tests.contract.support import server_url
from tests.integration.postgres_support import pg_base, pg_url, schema
from tests.integration.redis_server import RedisServer, free_port

from conveyor import Conveyor, Worker
from conveyor.backends import create_backend
from conveyor.backends.capabilities import ServerInfo
from conveyor.backends.redis.acl import acl_line
from conveyor.metrics import Refresher, build_registry

from .sentinel_group import SERVICE, SentinelGroup

__all__ = ["pg_base", "pg_url", "schema"]  # fixtures used here

FAMILY = "conveyor_store_server_info"
#: One series: (role, address, service, shard).
Series = tuple[str, str, str, str]


def servers_in(text: str) -> set[Series] | None:
    """The family's series in a ``/metrics`` page (``None``: no such family); each must be 1."""
    for family in text_string_to_metric_families(text):
        if family.name == FAMILY:
            assert all(s.value == 1 for s in family.samples), family.samples
            return {
                (s.labels["role"], s.labels["address"], s.labels["service"], s.labels["shard"])
                for s in family.samples
            }
    return None


async def served_once(url: str) -> str:
    """What a worker's ``/metrics`` page shows after one read of ``url``'s store."""
    app = Conveyor(url)
    try:
        refresher = Refresher(app.backend.clone())
        registry = build_registry(Worker(app, burst=True, reaper=False), refresher)
        await refresher.refresh()
        assert refresher.error is None, refresher.error
        text = generate_latest(registry).decode()
        await refresher._close()  # what `run` does when it ends
        return text
    finally:
        await app.aclose()


def expected(group: SentinelGroup, primary: int, replicas: list[int]) -> set[Series]:
    """The series for ``primary`` with ``replicas`` behind the group's sentinels."""
    out = {("primary", f"127.0.0.1:{primary}", SERVICE, "")}
    out |= {("replica", f"127.0.0.1:{port}", SERVICE, "") for port in replicas}
    out |= {("sentinel", f"127.0.0.1:{s.port}", SERVICE, "") for s in group.sentinels}
    return out


@pytest.fixture
def harness(tmp_path: Path, sentinels: SentinelGroup) -> Iterator[Cluster]:
    """Worker processes on a store behind the Sentinel service; killed after the test."""
    c = Cluster(tmp_path, sentinels.url("prefix=ha-metrics"))
    try:
        yield c
    finally:
        c.close()


@pytest.mark.timeout(120)
def test_a_worker_shows_the_sentinel_topology_and_follows_a_failover(
    sentinels: SentinelGroup, harness: Cluster
) -> None:
    # Given a worker serving metrics on the Sentinel URL, reading the store every 0.2 s
    port = free_port()
    harness.start_worker("--metrics-port", str(port), "--metrics-refresh", "0.2")
    primary = sentinels.primary()
    replica = next(s for s in sentinels.servers.values() if s is not primary)

    def shown() -> set[Series] | None:
        code, body = get(port, "/metrics")
        return servers_in(body) if code == 200 else None

    # When it is scraped, then its page names the primary, the replica and the three
    # sentinels, once each, with the service (exactly these series: no others)
    want = expected(sentinels, primary.port, [replica.port])
    wait_for(
        lambda: shown() == want,
        timeout=30,
        what=f"{FAMILY} to list {sorted(want)}",
        detail=lambda: f"{harness.outputs()}\n{get(port, '/metrics')[1]}",
    )

    # When the sentinels are told to fail over (as they do when the primary dies; asked
    # here, so the old primary stays up and rejoins as the replica without a restart)
    with sentinels.sentinels[0].client() as c:
        c.execute_command("SENTINEL", "FAILOVER", SERVICE)
    sentinels.wait_failover(primary.port, timeout=30)

    # Then the same worker's page names the new primary, and the old one as its replica
    want = expected(sentinels, replica.port, [primary.port])
    wait_for(
        lambda: shown() == want,
        timeout=30,
        what=f"{FAMILY} to name the new primary {replica.port}",
        detail=lambda: f"{harness.outputs()}\n{get(port, '/metrics')[1]}",
    )


async def test_a_redis_url_shows_its_one_server() -> None:
    # Given the plain test server (no replica)
    plain = server_url("redis")
    # When a worker's page is read
    alone = servers_in(await served_once(f"{plain}?prefix=ha-metrics"))
    # Then the server is one primary, at the URL's address
    host_port = plain.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    assert alone == {("primary", host_port, "", "")}


async def test_a_url_naming_a_replica_lists_it_as_a_replica(sentinels: SentinelGroup) -> None:
    # Given a redis:// URL naming the group's replica (every change there fails, so a
    # worker's refresh fails and reports the backend down; status warns)
    replica = next(s for s in sentinels.servers.values() if s is not sentinels.primary())
    backend = create_backend(f"{replica.url}?prefix=ha-metrics")
    await backend.open()
    try:
        # When the store is asked which servers it is on
        found = await backend.admin.servers()
    finally:
        await backend.close()
    # Then the one server is named a replica, not a primary
    assert found == [ServerInfo("replica", f"127.0.0.1:{replica.port}")]


async def test_a_password_never_reaches_the_page(sentinels: SentinelGroup) -> None:
    # Given a URL with a user and password (the servers' default user has ``nopass``, so
    # Redis accepts any password for it)
    primary = sentinels.primary()
    url = f"redis://default:not-a-real-secret@127.0.0.1:{primary.port}/0?prefix=ha-metrics"
    # When a worker's page is read
    text = await served_once(url)
    # Then it lists the server, and no part of the page holds the user's password
    assert servers_in(text) == {
        ("primary", f"127.0.0.1:{primary.port}", "", ""),
        *(
            ("replica", f"127.0.0.1:{s.port}", "", "")
            for s in sentinels.servers.values()
            if s is not primary
        ),
    }
    assert "not-a-real-secret" not in text


async def test_a_user_without_info_shows_the_server_as_the_primary(
    acl_server: RedisServer,
) -> None:
    # Given an ACL user with every command the store needs except the optional INFO
    with acl_server.client() as c:
        c.execute_command(*acl_line("noinfo", login="pw").replace(" +info", "").split())
    with (
        Redis("127.0.0.1", acl_server.port, username="noinfo", password="pw") as c,
        pytest.raises(NoPermissionError),
    ):
        c.info("replication")
    # When a worker's page is read
    text = await served_once(f"redis://noinfo:pw@127.0.0.1:{acl_server.port}/0")
    # Then the server it writes to is listed as the primary (its replicas cannot be known)
    assert servers_in(text) == {("primary", f"127.0.0.1:{acl_server.port}", "", "")}


async def test_sqlite_shows_no_servers(tmp_path: Path) -> None:
    text = await served_once(f"sqlite:///{tmp_path / 'metrics.db'}")
    assert "conveyor_queue_jobs" in text  # the store was read
    assert servers_in(text) is None


async def test_postgresql_shows_no_servers(pg_url: str) -> None:
    text = await served_once(pg_url)
    assert "conveyor_queue_jobs" in text
    assert servers_in(text) is None
