"""Tasks that run next to a `Worker` in the ``conveyor worker`` process.

* `report_metrics` logs the metrics line (`metrics.py`).
* `serve_metrics` serves Prometheus metrics and the ``/livez`` and ``/readyz`` probes
  (`conveyor.metrics`) on ``--metrics-port``, with the refresher that keeps them fresh.
* `HistoryRecorder` (`history.py`) adds the worker's finished attempts to the backend's
  per-minute throughput history (``HISTORY_HOURS``; 0 turns it off).
* `WaitAlerts` (`conveyor.alerts`) reports queues whose oldest ready job waits too long
  (``ALERT_WAIT_SECONDS`` / ``ALERT_WAIT_QUEUES``); one process in the fleet checks.
* `watch_parent` stops the worker when the process that started it (the supervisor of
  ``conveyor run``) is gone, so a killed supervisor leaves no worker behind. On Linux the
  supervisor also sets ``PR_SET_PDEATHSIG``; this check is the portable fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.worker.history import attach_history
from conveyor.worker.metrics import report_metrics

if TYPE_CHECKING:
    from conveyor.alerts import WaitAlerts
    from conveyor.metrics import MetricsServer, Refresher
    from conveyor.worker.worker import Worker

PARENT_CHECK_INTERVAL = 0.5
#: Set by ``conveyor run --metrics-port``: the directory where a worker writes the port its
#: metrics server bound (a file named by its pid), so the supervisor can scrape it.
PORT_DIR_ENV = "CONVEYOR_METRICS_PORT_DIR"


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
    from conveyor.debug import TOKEN_ENV as DEBUG_TOKEN_ENV
    from conveyor.metrics import MetricsServer, Probes, Refresher, build_registry

    refresher = Refresher(
        worker.app.backend.clone(),
        interval=endpoint.refresh,
        timeout=endpoint.refresh,
        clock=worker.app.clock,
    )
    server = MetricsServer(
        build_registry(worker, refresher),
        Probes(worker, refresher),
        host=endpoint.host,
        port=endpoint.port,
        debug_token=os.environ.get(DEBUG_TOKEN_ENV),
    )
    return server, refresher


def publish_port(server: MetricsServer, directory: str | None = None) -> Path | None:
    """Write the bound port to ``$CONVEYOR_METRICS_PORT_DIR/<pid>`` (atomically) when set."""
    directory = directory or os.environ.get(PORT_DIR_ENV)
    if not directory:
        return None
    path = Path(directory) / str(os.getpid())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(server.address[1]))
    tmp.replace(path)
    return path


async def serve_metrics(server: MetricsServer, refresher: Refresher) -> None:
    """Serve ``/metrics``, ``/livez`` and ``/readyz`` and keep them fresh until cancelled."""
    server.start()
    try:
        await refresher.run()
    finally:
        await asyncio.to_thread(server.stop)


def open_alerts(worker: Worker) -> WaitAlerts | None:
    """The wait alerts of the ``ALERT_*`` settings (checked now), or ``None`` when off."""
    from conveyor.alerts import WaitAlerts

    app = worker.app
    return WaitAlerts.from_settings(app.backend.clone(), app.clock, app.settings, owner=worker.id)


async def run_worker(
    worker: Worker,
    *,
    metrics_interval: float | None = None,
    parent_pid: int | None = None,
    metrics: MetricsEndpoint | None = None,
) -> int:
    """Run ``worker`` with its companions; return its exit code."""
    alerts = open_alerts(worker)  # a wrong ALERT_* setting fails before anything starts
    jobs: list[Coroutine[Any, Any, None]] = []
    if metrics is not None:
        server, refresher = open_metrics(worker, metrics)
        publish_port(server)
        jobs.append(serve_metrics(server, refresher))
    if metrics_interval:
        jobs.append(report_metrics(worker, metrics_interval))
    if parent_pid is not None:
        jobs.append(watch_parent(worker, parent_pid))
    history = attach_history(worker)
    if history is not None:
        jobs.append(history.run())
    if alerts is not None:
        jobs.append(alerts.run())
    companions = [asyncio.create_task(job) for job in jobs]
    try:
        return await worker.run()
    finally:
        for task in companions:
            task.cancel()
        for task in companions:
            with contextlib.suppress(asyncio.CancelledError):
                await task
