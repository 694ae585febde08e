"""Prometheus metrics and Kubernetes probes for a worker process.

* `refresher.py` reads the backend (queue depth, lease counters, live workers) every few
  seconds on the worker's event loop and keeps the last answer, so a scrape never waits on
  the backend; it also ticks a timestamp that proves the loop is responsive.
* `collector.py` turns the worker's own counters and that cached view into metric families
  at scrape time, and keeps the one thing that needs per-job observation: the job
  duration histogram.
* `source.py` is what they read from a worker (`MetricsSource`, a protocol a `Worker`
  fits), so this package never imports the worker that uses it.
* `server.py` serves ``/metrics``, ``/livez`` and ``/readyz`` from a stdlib HTTP server on
  its own thread (``conveyor worker --metrics-port``).

`docs/monitoring.md` lists every metric with its labels.
"""

from __future__ import annotations

from conveyor.metrics.collector import WorkerCollector, build_registry
from conveyor.metrics.refresher import BackendView, Refresher
from conveyor.metrics.server import MetricsServer, Probes
from conveyor.metrics.source import JobCounts, MetricsSource

__all__ = [
    "BackendView",
    "JobCounts",
    "MetricsServer",
    "MetricsSource",
    "Probes",
    "Refresher",
    "WorkerCollector",
    "build_registry",
]
