"""``rediss+sentinel://`` against TLS-only servers and a TLS-only sentinel: the store finds
the primary through the sentinel and runs over TLS; it follows a failover that demotes the
primary; an untrusted certificate is refused in one line."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from conveyor import Conveyor
from conveyor.backends import create_backend
from conveyor.errors import BackendUnavailable
from conveyor.job import Lease, Routing

from .sentinel_group import SERVICE

if TYPE_CHECKING:
    from .tls_sentinel import TlsSentinelGroup


async def test_the_store_runs_through_a_tls_sentinel(tls_sentinels: TlsSentinelGroup) -> None:
    tls_sentinels.wait_settled(40)
    app = Conveyor(tls_sentinels.url("prefix=tls-ha"))

    @app.task(name="tls.add")
    def add(a: int, b: int) -> int:
        return a + b

    try:
        # Given jobs enqueued over TLS from async and sync code
        first = await add.enqueue_async(1, 2)
        second = await asyncio.to_thread(add.enqueue, 3, 4)
        # When a claim and completions go over TLS to the primary the sentinel names
        backend = await app.open()
        jobs = await backend.claim("w1", Routing(), 10, 30.0)
        assert sorted(j.id for j in jobs) == sorted([first.id, second.id])
        for job in jobs:
            assert job.lease_token is not None
            assert await backend.complete(Lease(job.id, job.lease_token), b"7")
        # Then the primary holds them, finished
        with tls_sentinels.primary().client() as c:
            assert c.hget(f"{{tls-ha}}:job:{first.id}", "state") == "succeeded"
        # And the topology names the service, the sentinel, the primary and the replica
        primary = tls_sentinels.primary()
        replica = next(s for s in tls_sentinels.servers.values() if s is not primary)
        [line] = [d for d in await backend.admin.diagnostics() if d.startswith("topology:")]
        assert f"Sentinel service '{SERVICE}' (sentinels localhost:" in line
        assert f"primary 127.0.0.1:{primary.port}; replicas 127.0.0.1:{replica.port}" in line
    finally:
        await app.aclose()


async def test_a_demoted_primary_is_left_for_the_new_one_over_tls(
    tls_sentinels: TlsSentinelGroup,
) -> None:
    tls_sentinels.wait_settled(40)
    app = Conveyor(tls_sentinels.url("prefix=tls-ha-demoted"))

    @app.task(name="tls.noop")
    def noop() -> None: ...

    try:
        # Given pooled TLS connections (async and sync) to the primary
        await noop.enqueue_async()
        await asyncio.to_thread(noop.enqueue)
        old = tls_sentinels.primary()
        # When the sentinel hands the primary role to the replica and demotes the old one
        with tls_sentinels.sentinel.client() as c:
            c.execute_command("SENTINEL", "failover", SERVICE)
        tls_sentinels.wait_failover(old.port, timeout=30)
        # Then the next calls reconnect, over TLS, to the new primary without an error
        handle = await noop.enqueue_async()
        sync_handle = await asyncio.to_thread(noop.enqueue)
        new = tls_sentinels.primary()
        assert new is not old
        with new.client() as c:
            assert c.exists(f"{{tls-ha-demoted}}:job:{handle.id}")
            assert c.exists(f"{{tls-ha-demoted}}:job:{sync_handle.id}")
    finally:
        await app.aclose()


async def test_a_wrong_ca_is_refused_in_one_line(tls_sentinels: TlsSentinelGroup) -> None:
    backend = create_backend(tls_sentinels.url(ca=tls_sentinels.certs.other_ca))
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    await backend.close()
    message = str(caught.value)
    assert "TLS certificate that was refused" in message, message
    assert "ssl_ca_certs" in message and "\n" not in message
