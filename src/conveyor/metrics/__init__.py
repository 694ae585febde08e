"""Prometheus metrics and Kubernetes probes for a worker process.

* `refresher.py` reads the backend (queue depth, lease counters, live workers) every few
  seconds on the worker's event loop and keeps the last answer, so a scrape never waits on
  the backend; it also ticks a timestamp that proves the loop is responsive.
* `collector.py` turns the worker's own counters and that cached view into metric families
  at scrape time, and keeps the one thing that needs per-job observation: the job
  duration histogram.
* `server.py` serves ``/metrics``, ``/livez`` and ``/readyz`` from a stdlib HTTP server on
  its own thread (``conveyor worker --metrics-port``).

`docs/monitoring.md` lists every metric with its labels.
"""

from __future__ import annotations

from conveyor.metrics.collector import WorkerCollector, build_registry
from conveyor.metrics.refresher import BackendView, Refresher
from conveyor.metrics.server import MetricsServer, Probes

__all__ = [
    "BackendView",
    "MetricsServer",
    "Probes",
    "Refresher",
    "WorkerCollector",
    "build_registry",
]
