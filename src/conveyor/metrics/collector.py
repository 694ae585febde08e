"""The worker's metrics, read at scrape time from what the worker and the refresher keep.

Nothing here counts twice: the worker's counters (`Worker.counts`) and the refresher's
cached `BackendView` are read when Prometheus scrapes. The exceptions need each job as it
ends, by task and queue: the job duration histogram and the attempts counter (the failure
rate); the worker hands each job over through `Worker.job_observers`.

Backend-wide numbers (queue depth, lease counters, live workers, the store's servers)
describe the whole store, so every worker reports the same values: aggregate them with
``max``, never ``sum``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.backends.capabilities import Admin, ServerInfo, Telemetry
from conveyor.job import JobRecord

if TYPE_CHECKING:
    from conveyor.metrics.refresher import Refresher
    from conveyor.metrics.source import MetricsSource

#: Job duration buckets, in seconds: from a quick cache write to a long report.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)

#: Families read from the backend (the whole store, not one process): a supervisor serves
#: its own read of them and never passes its workers' copies through.
BACKEND_FAMILIES = frozenset(
    {
        "conveyor_backend_up",
        "conveyor_backend_read_age_seconds",
        "conveyor_queue_jobs",
        "conveyor_queue_oldest_wait_seconds",
        "conveyor_lease_recoveries",
        "conveyor_fenced_completions",
        "conveyor_poison_pills",
        "conveyor_workers_live",
        "conveyor_store_server_info",
    }
)

#: A job's outcome (``JobObserver``) → its result in ``conveyor_job_attempts_total``. The
#: dashboard's throughput history counts the same way: released, lost and deferred jobs
#: did not finish an attempt, so they are in neither column.
ATTEMPT_RESULTS = {"succeeded": "succeeded", "retried": "failed", "dead": "failed"}

#: Backend counter name (`Backend.counters`) → metric name and help.
STORE_COUNTERS = {
    "recovered": (
        "conveyor_lease_recoveries_total",
        "Jobs returned to ready after their worker's lease expired (whole store).",
    ),
    "fenced": (
        "conveyor_fenced_completions_total",
        "Results rejected because the worker no longer held the lease (whole store).",
    ),
    "poisoned": (
        "conveyor_poison_pills_total",
        "Jobs dead-lettered after too many lease recoveries (whole store).",
    ),
}


class WorkerCollector(Collector):
    """Metric families for one worker process and the store it reads."""

    def __init__(self, worker: MetricsSource, refresher: Refresher | None) -> None:
        self.worker = worker
        self.refresher = refresher

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus-client on every scrape, on the server's thread."""
        yield from self._worker_metrics()
        if self.refresher is not None:
            yield from backend_metrics(self.refresher)

    def _worker_metrics(self) -> Iterator[Metric]:
        w = self.worker
        stats = w.stats()  # one consistent read; safe off the loop (the heartbeat does it)
        c = w.counts
        info = GaugeMetricFamily(
            "conveyor_worker_info",
            "Always 1; labels identify this worker process.",
            labels=["worker", "pool", "host"],
        )
        info.add_metric([w.id, w.pool or "", stats.host], 1)
        yield info
        jobs = CounterMetricFamily(
            "conveyor_worker_jobs", "Jobs this worker finished, by outcome.", labels=["outcome"]
        )
        for outcome, n in (
            ("succeeded", c.succeeded),
            ("retried", c.retried),
            ("dead", c.dead),
            ("released", c.released),
            ("lost", c.lost),
        ):
            jobs.add_metric([outcome], n)
        yield jobs
        yield CounterMetricFamily(
            "conveyor_worker_fenced_completions",
            "Results this worker reported that were rejected: it no longer held the lease.",
            value=c.fenced,
        )
        yield CounterMetricFamily(
            "conveyor_worker_busy_seconds",
            "Seconds of job run time, summed over finished jobs (divide a rate by concurrency "
            "for utilisation).",
            value=c.busy_seconds,
        )
        yield GaugeMetricFamily(
            "conveyor_worker_running_jobs", "Jobs running now.", value=stats.running
        )
        yield GaugeMetricFamily(
            "conveyor_worker_concurrency",
            "Jobs this worker runs at once at most.",
            value=w.concurrency,
        )
        yield GaugeMetricFamily(
            "conveyor_worker_utilisation_ratio",
            "Busy time over available slot time since the worker started (0 to 1).",
            value=stats.utilisation,
        )
        yield GaugeMetricFamily(
            "conveyor_worker_uptime_seconds",
            "Seconds since the worker started.",
            value=stats.uptime,
        )
        age = w.heartbeat_age()
        if age is not None:
            yield GaugeMetricFamily(
                "conveyor_worker_heartbeat_age_seconds",
                "Seconds since the worker last refreshed its entry in the registry.",
                value=age,
            )
        waits = CounterMetricFamily(
            "conveyor_rate_limit_waits",
            "Jobs this worker put back to wait without using an attempt, by task and reason "
            "(rate_limit, concurrency, retry_after: the task raised RateLimited, unchecked).",
            labels=["task", "reason"],
        )
        for (task, reason), n in sorted(dict(c.waits).items()):  # one copy: the loop adds keys
            waits.add_metric([task, reason], n)
        yield waits


def backend_metrics(refresher: Refresher) -> Iterator[Metric]:
    """The whole-store families (`BACKEND_FAMILIES`) from the refresher's last read."""
    yield GaugeMetricFamily(
        "conveyor_backend_up",
        "1 when the last read of the backend succeeded in time.",
        value=1 if refresher.backend_fresh() else 0,
    )
    view = refresher.view
    if view is None:
        return
    yield GaugeMetricFamily(
        "conveyor_backend_read_age_seconds",
        "Seconds since the backend figures below were read.",
        value=refresher.backend_age() or 0.0,
    )
    # A family the store cannot report (no Admin, no Telemetry) is left out, not shown as 0.
    if Admin.name in view.kept:
        depth = GaugeMetricFamily(
            "conveyor_queue_jobs",
            "Jobs in the store per queue and priority, by state.",
            labels=["queue", "priority", "state"],
        )
        for row in view.queues:
            for state, n in sorted(row.counts.items(), key=lambda kv: kv[0].value):
                depth.add_metric([row.queue, row.priority.label, state.value], n)
        yield depth
        wait = GaugeMetricFamily(
            "conveyor_queue_oldest_wait_seconds",
            "Seconds the oldest ready job of each queue had waited when the store was read "
            "(0: none ready). A scheduled or retried job waits from its due time.",
            labels=["queue"],
        )
        for queue in sorted({row.queue for row in view.queues} | set(view.waits)):
            wait.add_metric([queue], view.waits.get(queue, 0.0))
        yield wait
        for key, (name, doc) in STORE_COUNTERS.items():
            total = view.counters.get(key, 0)
            yield CounterMetricFamily(name.removesuffix("_total"), doc, value=total)
    if Telemetry.name in view.kept:
        yield GaugeMetricFamily(
            "conveyor_workers_live",
            "Workers in the backend's registry (whole store).",
            value=view.workers,
        )
    if view.servers:
        yield server_info(view.servers)


def server_info(servers: Iterable[ServerInfo]) -> Metric:
    """``conveyor_store_server_info``: 1 per server the store is on (`Admin.servers`)."""
    family = GaugeMetricFamily(
        "conveyor_store_server_info",
        "Always 1; one series per server the store is on: its role (primary, replica, "
        "sentinel, shard-primary, shard-replica), address, Sentinel service and shard.",
        labels=["role", "address", "service", "shard"],
    )
    for s in dict.fromkeys(servers):  # each once, in the store's order
        family.add_metric(
            [s.role, s.address, s.service, "" if s.shard is None else str(s.shard)], 1
        )
    return family


def build_registry(worker: MetricsSource, refresher: Refresher | None) -> CollectorRegistry:
    """A registry with the worker's metrics, the duration histogram, the attempts counter
    and process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker, refresher))
    ProcessCollector(registry=registry)
    duration = Histogram(
        "conveyor_job_duration_seconds",
        "Run time of jobs, by task, queue and outcome.",
        labelnames=["task", "queue", "outcome"],
        buckets=DURATION_BUCKETS,
        registry=registry,
    )

    attempts = Counter(
        "conveyor_job_attempts",
        "Attempts this worker finished, by task, queue and result: succeeded, or failed "
        "(the task raised; retried or dead). Failure rate: failed over both.",
        labelnames=["task", "queue", "result"],
        registry=registry,
    )
    # Every task's default queue starts at 0 for both results, so a rate() of failures is 0
    # rather than missing until the first one.
    for name, task in sorted(worker.app.tasks.items()):
        for result in ("succeeded", "failed"):
            attempts.labels(name, task.queue, result)

    def observe(job: JobRecord, outcome: str, seconds: float) -> None:
        duration.labels(job.task, job.queue, outcome).observe(seconds)
        result = ATTEMPT_RESULTS.get(outcome)
        if result is not None:
            attempts.labels(job.task, job.queue, result).inc()

    worker.job_observers.append(observe)
    return registry
