"""Tasks that run next to a `Worker` in the ``conveyor worker`` process.

* `report_metrics` logs the metrics line (`metrics.py`).
* `serve_metrics` serves Prometheus metrics and the ``/livez`` and ``/readyz`` probes
  (`conveyor.metrics`) on ``--metrics-port``, with the refresher that keeps them fresh.
* `watch_parent` stops the worker when the process that started it (the supervisor of
  ``conveyor run``) is gone, so a killed supervisor leaves no worker behind. On Linux the
  supervisor also sets ``PR_SET_PDEATHSIG``; this check is the portable fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.worker.metrics import report_metrics

if TYPE_CHECKING:
    from conveyor.metrics import MetricsServer, Refresher
    from conveyor.worker.worker import Worker

PARENT_CHECK_INTERVAL = 0.5


async def watch_parent(worker: Worker, parent_pid: int) -> None:
    """Stop ``worker`` gracefully once our parent is no longer ``parent_pid``."""
    while True:
        if os.getppid() != parent_pid:
            break
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
    if worker.stop_reason is None:
        worker.stop(f"the supervisor (pid {parent_pid}) is gone")


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """Where ``conveyor worker --metrics-port`` serves metrics and probes."""

    port: int
    host: str = "127.0.0.1"
    #: Seconds between reads of the backend (queue depth, counters, readiness).
    refresh: float = 5.0


def open_metrics(worker: Worker, endpoint: MetricsEndpoint) -> tuple[MetricsServer, Refresher]:
    """Bind the metrics port now, so a port in use fails before the worker starts."""
    from conveyor.metrics import MetricsServer, Probes, Refresher, build_registry

    refresher = Refresher(
        worker.app.backend.clone(), interval=endpoint.refresh, timeout=endpoint.refresh
    )
    server = MetricsServer(
        build_registry(worker, refresher), Probes(worker, refresher),
        host=endpoint.host, port=endpoint.port,
    )
    return server, refresher


async def serve_metrics(server: MetricsServer, refresher: Refresher) -> None:
    """Serve ``/metrics``, ``/livez`` and ``/readyz`` and keep them fresh until cancelled."""
    server.start()
    try:
        await refresher.run()
    finally:
        await asyncio.to_thread(server.stop)


async def run_worker(
    worker: Worker,
    *,
    metrics_interval: float | None = None,
    parent_pid: int | None = None,
    metrics: MetricsEndpoint | None = None,
) -> int:
    """Run ``worker`` with its companions; return its exit code."""
    companions: list[asyncio.Task[None]] = []
    if metrics is not None:
        server, refresher = open_metrics(worker, metrics)
        companions.append(asyncio.create_task(serve_metrics(server, refresher)))
    if metrics_interval:
        companions.append(asyncio.create_task(report_metrics(worker, metrics_interval)))
    if parent_pid is not None:
        companions.append(asyncio.create_task(watch_parent(worker, parent_pid)))
    try:
        return await worker.run()
    finally:
        for task in companions:
            task.cancel()
        for task in companions:
            with contextlib.suppress(asyncio.CancelledError):
                await task
