"""The supervisor's scrape of its workers, without processes: port files and merging."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from conveyor import Conveyor, Worker
from conveyor.metrics import Refresher, build_registry
from conveyor.supervisor.scrape import STALE_AFTER, Target, _merge, read_port, tidy


def test_a_port_file_older_than_its_process_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "123").write_text("4567")
    now = time.time()
    assert read_port(tmp_path, Target("jobs", 123, started_at=now - 5)) == 4567
    # an earlier process with the same pid wrote it: not this one's port
    assert read_port(tmp_path, Target("jobs", 123, started_at=now + 60)) is None
    assert read_port(tmp_path, Target("jobs", 999, started_at=now)) is None


def test_only_old_port_files_of_unsupervised_pids_are_removed(tmp_path: Path) -> None:
    for name in ("1", "2", "3"):
        (tmp_path / name).write_text("1")
    old = time.time() - STALE_AFTER - 10
    os.utime(tmp_path / "2", (old, old))
    os.utime(tmp_path / "3", (old, old))
    tidy(tmp_path, live=[3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "3"]


async def test_merging_adds_worker_and_pool_and_drops_the_store_families(
    app: Conveyor,
) -> None:
    # Given two workers' pages, each with its own counters and the store's figures
    @app.task
    async def noop() -> None:
        return None

    pages = []
    for _ in range(2):
        noop.enqueue()
        worker = Worker(app, burst=True, reaper=False)
        refresher = Refresher(app.backend.clone())
        registry = build_registry(worker, refresher)
        assert await worker.run() == 0
        await refresher.refresh()
        pages.append((worker.id, generate_latest(registry).decode()))

    # When they are merged as pool jobs
    merged: dict[str, Metric] = {}
    for n, (_, text) in enumerate(pages):
        _merge(merged, text_string_to_metric_families(text), Target("jobs", n, 0.0))

    # Then each worker's series carry its id and pool, and no store family is left
    assert "conveyor_queue_jobs" not in merged
    assert "conveyor_workers_live" not in merged
    registry = CollectorRegistry()

    class Merged(Collector):
        def collect(self) -> Iterable[Metric]:
            return list(merged.values())

    registry.register(Merged())
    out = text_string_to_metric_families(generate_latest(registry).decode())
    jobs = {
        (s.labels["worker"], s.labels["pool"]): s.value
        for f in out
        for s in f.samples
        if s.name == "conveyor_worker_jobs_total" and s.labels["outcome"] == "succeeded"
    }
    assert jobs == {(pages[0][0], "jobs"): 1, (pages[1][0], "jobs"): 1}
