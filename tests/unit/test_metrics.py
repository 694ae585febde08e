"""The metrics collector and probes, on the memory backend, without HTTP."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.partial_stores import partial_store

from conveyor import Conveyor, Worker
from conveyor.job import NewJob, Priority
from conveyor.metrics import Probes, Refresher, build_registry


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


async def test_a_burst_worker_is_counted_and_the_backend_view_is_read(app: Conveyor) -> None:
    # Given two jobs in the default queue and one in a queue nobody serves
    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    add.enqueue(1, 2)
    add.enqueue(3, 4)
    add.options(queue="parked", priority="low").enqueue(5, 6)
    worker = Worker(app, burst=True, reaper=False, queues=("default",))
    refresher = Refresher(app.backend.clone(), interval=1.0, timeout=1.0)
    registry = build_registry(worker, refresher)
    probes = Probes(worker, refresher)
    # Before anything ran the worker is live but not ready: no read, no heartbeat yet.
    assert probes.live() == []
    assert any("backend unreachable" in p for p in probes.ready())

    # When the worker drains its queue and the refresher reads the backend
    assert await worker.run() == 0
    await refresher.refresh()

    # Then the scrape has per-outcome counts, the histogram by task, and the parked job.
    s = samples(generate_latest(registry))
    assert s[("conveyor_worker_jobs_total", frozenset({("outcome", "succeeded")}))] == 2
    key = frozenset({("task", add.name), ("queue", "default"), ("outcome", "succeeded")})
    assert s[("conveyor_job_duration_seconds_count", key)] == 2
    parked = frozenset({("queue", "parked"), ("priority", "low"), ("state", "ready")})
    assert s[("conveyor_queue_jobs", parked)] == 1
    assert s[("conveyor_backend_up", frozenset())] == 1
    assert s[("conveyor_poison_pills_total", frozenset())] == 0
    # and a stopped worker is not ready.
    assert any("stopping" in p for p in probes.ready())


@pytest.mark.parametrize(
    ("keep", "kept"),
    [
        ((), frozenset()),
        (("admin",), frozenset({"admin"})),
        (("telemetry",), frozenset({"telemetry"})),
        (("admin", "telemetry"), frozenset({"admin", "telemetry"})),
    ],
)
async def test_the_refresher_reads_only_what_the_store_keeps(
    keep: tuple[str, ...], kept: frozenset[str]
) -> None:
    # Given a store with one ready job, offering only some capabilities
    store = partial_store(*keep)
    job = NewJob("t", "default", Priority.NORMAL, b"[[], {}]", max_retries=0, timeout=1.0)
    await store.enqueue([job])
    refresher = Refresher(store, interval=1.0, timeout=1.0)
    # When it reads the store
    await refresher.refresh()
    # Then the read succeeded and says which figures it holds
    assert refresher.error is None and refresher.view is not None
    assert refresher.view.kept == kept
    assert len(refresher.view.queues) == (1 if "admin" in keep else 0)
    assert bool(refresher.view.counters) == ("admin" in keep)
    assert refresher.backend_fresh()


@pytest.mark.parametrize("keep", [(), ("admin",), ("telemetry",)])
async def test_a_scrape_leaves_out_what_the_store_does_not_keep(
    app: Conveyor, keep: tuple[str, ...]
) -> None:
    # Given a worker's metrics, and a fresh read of a store offering only some capabilities
    worker = Worker(app, burst=True, reaper=False)
    refresher = Refresher(partial_store(*keep), interval=1.0, timeout=1.0)
    registry = build_registry(worker, refresher)
    await refresher.refresh()
    # When it is scraped
    names = {name for name, _ in samples(generate_latest(registry))}
    # Then the store's families are there only when the store keeps them: absent, not 0
    assert "conveyor_backend_up" in names
    assert ("conveyor_poison_pills_total" in names) == ("admin" in keep)
    assert ("conveyor_workers_live" in names) == ("telemetry" in keep)
