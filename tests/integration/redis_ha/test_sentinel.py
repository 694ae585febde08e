"""Redis Sentinel against real servers: the URL reaches the primary, the topology is shown,
and under load a SIGKILLed primary fails over while workers carry on.

The failover tests print their figures (failover time, when workers resumed, acknowledged
enqueues lost and over which window); docs/redis.md quotes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster, wait_for
from tests.acceptance.ledger_app import WORK
from tests.integration.redis_server import free_port

from conveyor import Conveyor
from conveyor.backends import create_backend
from conveyor.errors import BackendUnavailable

from .sentinel_group import SERVICE, SentinelGroup

#: The loss window docs/redis.md promises without wait_replicas on a healthy network: an
#: acknowledged enqueue is lost only if the primary dies within this many seconds of it.
LOSS_WINDOW = 1.0
#: How long after the SIGKILL workers must be running new jobs again.
RESUME_BOUND = 30.0


async def test_the_url_reaches_the_primary_and_status_shows_the_topology(
    sentinels: SentinelGroup,
) -> None:
    # Given the store on the Sentinel service
    backend = create_backend(sentinels.url("prefix=ha-topology"))
    await backend.open()
    try:
        primary, replica = (
            sentinels.primary(),
            next(s for s in sentinels.servers.values() if s is not sentinels.primary()),
        )
        # When a job is enqueued, on the async and on the sync client
        app = Conveyor(sentinels.url("prefix=ha-topology"))

        @app.task(name="ha.noop")
        def noop() -> None: ...

        handle = await noop.enqueue_async()
        sync_handle = await asyncio.to_thread(noop.enqueue)
        # Then the primary holds both
        with primary.client() as c:
            assert c.exists(f"{{ha-topology}}:job:{handle.id}")
            assert c.exists(f"{{ha-topology}}:job:{sync_handle.id}")
        # And the diagnostics name the service, the sentinels, the primary and the replica
        [line] = [d for d in await backend.admin.diagnostics() if d.startswith("topology:")]
        assert f"Sentinel service '{SERVICE}'" in line
        assert f"primary 127.0.0.1:{primary.port}" in line
        assert f"replicas 127.0.0.1:{replica.port} (online" in line
        assert all(f"127.0.0.1:{s.port}" in line for s in sentinels.sentinels)
        # And conveyor status shows the same
        status = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "conveyor", "status", "--json", "--url", app.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        # (the replica's lag may have changed between the two reads)
        shown = [d.split(" (online")[0] for d in json.loads(status.stdout)["diagnostics"]]
        assert line.split(" (online")[0] in shown
        # And the human report shows it as a fact (not a warning), with the sentinels' hosts
        human = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "conveyor", "status", "--url", app.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "400"},
        )
        assert human.returncode == 0, human.stderr
        assert any(row.startswith("topology: ") for row in human.stdout.splitlines())
        assert f"127.0.0.1:{sentinels.sentinels[0].port}," in human.stdout
        await app.aclose()
    finally:
        await backend.close()


async def test_an_unknown_service_is_a_clear_error(sentinels: SentinelGroup) -> None:
    url = sentinels.url().replace(f"/{SERVICE}/", "/no-such-service/")
    backend = create_backend(url)
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    await backend.close()
    message = str(caught.value)
    assert "no-such-service" in message and "check the service name" in message
    assert "\n" not in message


async def test_unreachable_sentinels_are_one_short_line() -> None:
    # Given sentinels that are not running (nothing listens on their ports)
    ports = [free_port(), free_port()]
    backend = create_backend(f"redis+sentinel://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/svc/0")
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    await backend.close()
    # Then the error names each sentinel's failure, without redis-py's client reprs
    message = str(caught.value)
    assert all(f"connecting to 127.0.0.1:{p}" in message for p in ports), message
    assert "<redis." not in message and "\n" not in message and len(message) < 600


async def test_wait_replicas_holds_with_a_replica_online(sentinels: SentinelGroup) -> None:
    app = Conveyor(sentinels.url("prefix=ha-wait&wait_replicas=1&wait_timeout_ms=2000"))

    @app.task(name="ha.noop")
    def noop() -> None: ...

    try:
        handle = await noop.enqueue_async()
        sync_handle = await asyncio.to_thread(noop.enqueue)
        replica = next(s for s in sentinels.servers.values() if s is not sentinels.primary())
        # WAIT returned only once the replica had the jobs: they are there now
        with replica.client() as c:
            assert c.exists(f"{{ha-wait}}:job:{handle.id}")
            assert c.exists(f"{{ha-wait}}:job:{sync_handle.id}")
        # And while that replica cannot confirm (stopped), an enqueue is refused
        assert replica.proc is not None
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            quick = Conveyor(sentinels.url("prefix=ha-wait&wait_replicas=1&wait_timeout_ms=300"))
            try:
                with pytest.raises(BackendUnavailable, match="only 0 of wait_replicas=1"):
                    await quick.enqueue_async("ha.noop")
            finally:
                await quick.aclose()
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
    finally:
        await app.aclose()


async def test_a_demoted_primary_is_left_for_the_new_one(sentinels: SentinelGroup) -> None:
    # Given a handle whose pooled connections (async and sync) lead to the primary
    app = Conveyor(sentinels.url("prefix=ha-demoted"))

    @app.task(name="ha.noop")
    def noop() -> None: ...

    try:
        await noop.enqueue_async()
        await asyncio.to_thread(noop.enqueue)
        old = sentinels.primary()
        # When the sentinels hand the primary role to the replica and demote the old one
        with sentinels.sentinels[0].client() as c:
            c.execute_command("SENTINEL", "failover", SERVICE)
        sentinels.wait_failover(old.port, timeout=30)
        wait_for(
            lambda: old.client().info("replication").get("role") == "slave",
            timeout=30,
            what="the old primary to become a replica",
        )
        # Then the next calls meet READONLY on the old connections, drop them, and reach
        # the new primary at once: no error reaches the caller
        handle = await noop.enqueue_async()
        sync_handle = await asyncio.to_thread(noop.enqueue)
        with sentinels.primary().client() as c:
            assert c.exists(f"{{ha-demoted}}:job:{handle.id}")
            assert c.exists(f"{{ha-demoted}}:job:{sync_handle.id}")
    finally:
        await app.aclose()


# -- failover under load -------------------------------------------------------------------
class Producer(threading.Thread):
    """Enqueues one ``ledger.work`` job at a time from sync code, recording when each
    enqueue was acknowledged; failed enqueues are counted and the next one is tried."""

    def __init__(self, app: Conveyor) -> None:
        super().__init__(daemon=True, name="ha-producer")
        self.task = app.get_task(WORK)
        self.acked: dict[str, float] = {}
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set() and n < 2000:
            n += 1
            try:
                handle = self.task.enqueue(n, 0.02)
            except BackendUnavailable as exc:
                self.errors.append(str(exc))
                self.halt.wait(0.05)
                continue
            self.acked[handle.id] = time.time()
            self.halt.wait(0.02)

    def acknowledged(self) -> dict[str, float]:
        """The acknowledged ids so far, with their times."""
        return dict(self.acked)


async def _missing(url: str, ids: list[str]) -> list[str]:
    backend = create_backend(url)
    await backend.open()
    try:
        return [i for i in ids if await backend.get(i) is None]
    finally:
        await backend.close()


@pytest.mark.parametrize("wait", [True, False], ids=["wait_replicas=1", "no_wait"])
def test_sigkill_of_the_primary_under_load(
    sentinels: SentinelGroup, tmp_path: Path, wait: bool
) -> None:
    query = "prefix=ha-load&wait_replicas=1&wait_timeout_ms=1000" if wait else "prefix=ha-load"
    url = sentinels.url(query)
    cluster = Cluster(tmp_path, url)
    producer = Producer(cluster.app)
    try:
        # Given two workers draining what a producer enqueues
        for _ in range(2):
            cluster.start_worker("--concurrency", "4")
        cluster.wait_ended(cluster.enqueue_work(8), timeout=60)
        producer.start()
        wait_for(lambda: len(producer.acked) >= 40, timeout=30, what="40 enqueues")
        # When the primary is SIGKILLed
        old = sentinels.primary().port
        killed_at = time.time()
        sentinels.kill_primary()
        failover = sentinels.wait_failover(old, timeout=30)
        if wait:
            # With wait_replicas=1 enqueues fail until a replica is back: bring it back.
            sentinels.heal()
        count = len(producer.acked)
        wait_for(
            lambda: len(producer.acked) >= count + 30,
            timeout=40,
            what="enqueues after the failover",
            detail=lambda: "\n".join(producer.errors[-3:]),
        )
        producer.halt.set()
        producer.join(10)
        acked = producer.acknowledged()
        # Then the acknowledged jobs the new primary lacks are at most the loss window's
        lost = asyncio.run(_missing(url, list(acked)))
        window = max((killed_at - acked[j] for j in lost), default=0.0)
        # And every other acknowledged job completes
        cluster.wait_ended(set(acked) - set(lost), timeout=90)
        # Jobs take 20 ms: one that starts a second after the SIGKILL was claimed after it.
        resumed = (
            min(r["t"] for r in cluster.ledger().events("start") if r["t"] > killed_at + 1)
            - killed_at
        )
        print(
            f"\n[sentinel failover, {'wait_replicas=1' if wait else 'no wait'}] "
            f"failover {failover:.2f}s; workers ran new jobs {resumed:.2f}s after the "
            f"SIGKILL; acknowledged enqueues {len(acked)}, lost {len(lost)} "
            f"(window {window * 1000:.0f} ms); failed enqueues {len(producer.errors)}"
        )
        assert resumed < RESUME_BOUND, cluster.outputs()
        if wait:
            assert lost == [], f"acknowledged with wait_replicas=1 yet lost: {lost}"
        else:
            assert window <= LOSS_WINDOW, f"lost {len(lost)} acknowledged {window:.3f}s early"
        # And every worker is still running
        assert all(p.alive() for p in cluster.processes), cluster.outputs()
    finally:
        producer.halt.set()
        producer.join(10)
        cluster.close()


async def test_a_plain_url_naming_a_replica_is_refused_clearly(sentinels: SentinelGroup) -> None:
    replica = next(s for s in sentinels.servers.values() if s is not sentinels.primary())
    app = Conveyor(f"{replica.url}?prefix=ha-replica")

    @app.task(name="ha.noop")
    def noop() -> None: ...

    try:
        with pytest.raises(BackendUnavailable) as caught:
            await noop.enqueue_async()
        assert "is a read-only replica now" in str(caught.value)
        assert "redis+sentinel://" in str(caught.value)
        backend = await app.open()
        warnings = await backend.admin.diagnostics()
        assert any(f"{replica.port} is a read-only replica" in w for w in warnings), warnings
        assert f"topology: server 127.0.0.1:{replica.port} (replica); no replicas" in warnings
    finally:
        await app.aclose()
