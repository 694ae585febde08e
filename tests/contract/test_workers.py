"""The live-worker registry."""

from __future__ import annotations

from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import WorkerInfo


def info(worker_id: str, **fields: object) -> WorkerInfo:
    return WorkerInfo(id=worker_id, host="box-1", pid=4242, started_at=1_600_000_000.0, **fields)  # type: ignore[arg-type]


async def test_register_lists_the_worker(backend: Backend, clock: FakeClock):
    w = info("w1", pool="mail", queues=("mail", "mail-*"), stats={"processed": 3})

    await backend.register_worker(w, ttl=10)

    [listed] = await backend.workers()
    assert listed.id == "w1" and listed.host == "box-1" and listed.pid == 4242
    assert listed.pool == "mail" and listed.queues == ("mail", "mail-*")
    assert listed.stats == {"processed": 3}
    assert listed.started_at == 1_600_000_000.0
    assert listed.last_seen == clock.now()


async def test_worker_without_pool_or_queues(backend: Backend):
    await backend.register_worker(info("w1"), ttl=10)

    [listed] = await backend.workers()
    assert (listed.pool, listed.queues, listed.stats) == (None, None, {})


async def test_refresh_moves_expiry_and_updates_stats(backend: Backend, clock: FakeClock):
    await backend.register_worker(info("w1", stats={"processed": 1}), ttl=10)
    clock.advance(8)
    await backend.register_worker(info("w1", stats={"processed": 9}), ttl=10)
    clock.advance(8)  # 16 s after the first call, 8 s after the refresh

    [listed] = await backend.workers()
    assert listed.stats == {"processed": 9} and listed.last_seen == clock.now() - 8


async def test_worker_drops_off_after_its_ttl(backend: Backend, clock: FakeClock):
    await backend.register_worker(info("w1"), ttl=10)
    await backend.register_worker(info("w2"), ttl=30)

    clock.advance(9.999)
    assert {w.id for w in await backend.workers()} == {"w1", "w2"}
    clock.advance(0.001)
    assert [w.id for w in await backend.workers()] == ["w2"]

    # A worker that comes back is live again.
    await backend.register_worker(info("w1"), ttl=10)
    assert {w.id for w in await backend.workers()} == {"w1", "w2"}


async def test_unregister(backend: Backend):
    await backend.register_worker(info("w1"), ttl=10)
    await backend.register_worker(info("w2"), ttl=10)

    await backend.unregister_worker("w1")
    await backend.unregister_worker("never-registered")

    assert [w.id for w in await backend.workers()] == ["w2"]


async def test_other_handles_see_the_registry(backend: Backend, other: Backend):
    await backend.register_worker(info("w1"), ttl=10)

    assert [w.id for w in await other.workers()] == ["w1"]
