"""The live-worker registry."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Telemetry
from conveyor.clock import FakeClock
from conveyor.job import WorkerInfo
from conveyor.testing.contract.fixtures import requires


def info(worker_id: str, **fields: Any) -> WorkerInfo:
    """A worker on one host, with ``fields`` (pool, queues, stats) as given."""
    return WorkerInfo(id=worker_id, host="box-1", pid=4242, started_at=1_600_000_000.0, **fields)


@pytest.mark.asyncio
@requires(Telemetry)
class TestWorkers:
    """The live-worker registry: for stores with `Telemetry`."""

    async def test_register_lists_the_worker(self, backend: Backend, clock: FakeClock) -> None:
        w = info("w1", pool="mail", queues=("mail", "mail-*"), stats={"processed": 3})

        await backend.telemetry.register_worker(w, ttl=10)

        [listed] = await backend.telemetry.workers()
        assert listed.id == "w1" and listed.host == "box-1" and listed.pid == 4242
        assert listed.pool == "mail" and listed.queues == ("mail", "mail-*")
        assert listed.stats == {"processed": 3}
        assert listed.started_at == 1_600_000_000.0
        assert listed.last_seen == clock.now()

    async def test_worker_without_pool_or_queues(self, backend: Backend) -> None:
        await backend.telemetry.register_worker(info("w1"), ttl=10)

        [listed] = await backend.telemetry.workers()
        assert (listed.pool, listed.queues, listed.stats) == (None, None, {})

    async def test_refresh_moves_expiry_and_updates_stats(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await backend.telemetry.register_worker(info("w1", stats={"processed": 1}), ttl=10)
        clock.advance(8)
        await backend.telemetry.register_worker(info("w1", stats={"processed": 9}), ttl=10)
        clock.advance(8)  # 16 s after the first call, 8 s after the refresh

        [listed] = await backend.telemetry.workers()
        assert listed.stats == {"processed": 9} and listed.last_seen == clock.now() - 8

    async def test_worker_drops_off_after_its_ttl(self, backend: Backend, clock: FakeClock) -> None:
        await backend.telemetry.register_worker(info("w1"), ttl=10)
        await backend.telemetry.register_worker(info("w2"), ttl=30)

        clock.advance(9.999)
        assert {w.id for w in await backend.telemetry.workers()} == {"w1", "w2"}
        clock.advance(0.001)
        assert [w.id for w in await backend.telemetry.workers()] == ["w2"]

        # A worker that comes back is live again.
        await backend.telemetry.register_worker(info("w1"), ttl=10)
        assert {w.id for w in await backend.telemetry.workers()} == {"w1", "w2"}

    async def test_unregister(self, backend: Backend) -> None:
        await backend.telemetry.register_worker(info("w1"), ttl=10)
        await backend.telemetry.register_worker(info("w2"), ttl=10)

        await backend.telemetry.unregister_worker("w1")
        await backend.telemetry.unregister_worker("never-registered")

        assert [w.id for w in await backend.telemetry.workers()] == ["w2"]

    async def test_other_handles_see_the_registry(self, backend: Backend, other: Backend) -> None:
        await backend.telemetry.register_worker(info("w1"), ttl=10)

        assert [w.id for w in await other.telemetry.workers()] == ["w1"]
