"""``conveyor run --metrics-port``: one endpoint for every pool the supervisor runs.

* Per-worker families (jobs by outcome, durations, utilisation, ``process_*``) are read
  from each worker's own endpoint at scrape time (`scrape.py`) and served with ``worker``
  and ``pool`` labels, one series set per process, exactly as if Prometheus had scraped
  each worker: aggregate them with ``sum by (pool)``.
* Whole-store families (queue depth, lease counters, live workers, backend up) come from
  the supervisor's own `Refresher`, read once: the workers' copies are dropped.
* Supervisor families: configured and running processes per pool, restarts by pool and
  reason, workers that did not answer a scrape, uptime.
* ``/livez``: the supervisor's loop is turning. ``/readyz``: the backend answers and every
  pool has all its processes running.

The supervisor itself is a plain (signal-driven) loop; the refresher runs on an event loop
in a thread of its own, and scrapes are answered from the HTTP server's threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.metrics.collector import backend_metrics
from conveyor.metrics.refresher import Refresher
from conveyor.metrics.server import STALL_SECONDS, MetricsServer
from conveyor.supervisor.scrape import SCRAPE_TIMEOUT, Target, scrape, tidy

if TYPE_CHECKING:
    from conveyor.backends.base import Backend
    from conveyor.supervisor.supervisor import Supervisor

#: Where, under the run directory, workers publish their metrics ports.
PORTS_DIR = "metrics-ports"
#: Seconds between the workers' own backend reads: the supervisor serves its own read, so
#: theirs only keep their (unscraped) ``/readyz`` honest and can be rare.
WORKER_REFRESH = 30.0


#: Flags that make a supervised worker serve its metrics on an ephemeral loopback port.
WORKER_ARGS = (
    "--metrics-port",
    "0",
    "--metrics-host",
    "127.0.0.1",
    "--metrics-refresh",
    f"{WORKER_REFRESH:g}",
)


def worker_env(run_dir: Path) -> dict[str, str]:
    """Environment that makes a worker publish its port where the supervisor looks."""
    from conveyor.worker.companions import PORT_DIR_ENV

    return {PORT_DIR_ENV: str(run_dir / PORTS_DIR)}


class SupervisorCollector(Collector):
    """The families of one supervisor scrape (see the module docstring)."""

    def __init__(
        self,
        supervisor: Supervisor,
        refresher: Refresher,
        ports: Path,
        timeout: float = SCRAPE_TIMEOUT,
    ) -> None:
        self.supervisor = supervisor
        self.refresher = refresher
        self.ports = ports
        self.timeout = timeout
        self._lock = threading.Lock()
        #: Worker scrapes that failed or timed out, per pool, since start.
        self.failures: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus-client on every scrape, on a server thread."""
        targets = [
            Target(pool, child.pid, child.started_at) for pool, child in self.supervisor.processes()
        ]
        result = scrape(self.ports, targets, self.timeout)
        tidy(self.ports, (t.pid for t in targets))
        with self._lock:
            for pool, n in result.failed.items():
                self.failures[pool] = self.failures.get(pool, 0) + n
            failures = dict(self.failures)
        yield from result.families
        yield from backend_metrics(self.refresher)
        yield from self._supervisor_metrics(failures)

    def _supervisor_metrics(self, failures: dict[str, int]) -> Iterator[Metric]:
        sup = self.supervisor
        wanted = GaugeMetricFamily(
            "conveyor_supervisor_processes",
            "Worker processes each pool should run.",
            labels=["pool"],
        )
        up = GaugeMetricFamily(
            "conveyor_supervisor_processes_up",
            "Worker processes running now, per pool.",
            labels=["pool"],
        )
        restarts = CounterMetricFamily(
            "conveyor_supervisor_restarts",
            "Worker processes replaced, per pool: recycled (exit 0: max jobs, memory, max "
            "time) or crashed.",
            labels=["pool", "reason"],
        )
        missed = CounterMetricFamily(
            "conveyor_supervisor_scrape_failures",
            "Worker endpoints that did not answer a scrape in time (skipped), per pool.",
            labels=["pool"],
        )
        for pool, status in sup.pool_status().items():
            wanted.add_metric([pool], status.processes)
            up.add_metric([pool], status.running)
            restarts.add_metric([pool, "recycled"], status.recycled)
            restarts.add_metric([pool, "crashed"], status.crashed)
            missed.add_metric([pool], failures.get(pool, 0))
        yield from (wanted, up, restarts, missed)
        yield GaugeMetricFamily(
            "conveyor_supervisor_uptime_seconds",
            "Seconds since the supervisor started.",
            value=sup.uptime(),
        )


class SupervisorProbes:
    """``/livez`` and ``/readyz`` of the supervisor."""

    def __init__(self, supervisor: Supervisor, refresher: Refresher) -> None:
        self.supervisor = supervisor
        self.refresher = refresher

    def live(self) -> list[str]:
        """Why the supervisor is not live (empty: it is)."""
        stalled = time.monotonic() - self.supervisor.loop_tick
        if stalled > STALL_SECONDS:
            return [f"the supervisor loop has not run for {stalled:.0f}s"]
        return []

    def ready(self) -> list[str]:
        """Why the supervisor is not ready (empty: it is)."""
        problems = self.live()
        if self.supervisor.stopping:
            problems.append("the supervisor is stopping")
        if not self.refresher.backend_fresh():
            problems.append(f"backend unreachable: {self.refresher.error or 'no recent read'}")
        for pool, status in self.supervisor.pool_status().items():
            if status.running < status.processes:
                problems.append(
                    f"pool {pool}: {status.running} of {status.processes} worker process(es) "
                    "running"
                )
        return problems


class SupervisorMetrics:
    """The supervisor's endpoint: bound at construction (a port in use fails at once),
    served from `start` (inside `Supervisor.run`) until `stop`."""

    def __init__(
        self,
        supervisor: Supervisor,
        backend: Backend,
        *,
        port: int,
        host: str = "127.0.0.1",
        refresh: float = 5.0,
    ) -> None:
        self.supervisor = supervisor
        self.ports = supervisor.run_dir.path / PORTS_DIR
        self.refresher = Refresher(backend, interval=refresh, timeout=refresh)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SupervisorCollector(supervisor, self.refresher, self.ports))
        self.server = MetricsServer(
            registry, SupervisorProbes(supervisor, self.refresher), host=host, port=port
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()

    def start(self) -> None:
        """Prepare the port directory, start the refresher thread and serve."""
        shutil.rmtree(self.ports, ignore_errors=True)  # stale ports of an earlier run
        self.ports.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._refresh(),),
            name="conveyor-refresher",
            daemon=True,
        )
        self._thread.start()
        self._started.wait(10)
        self.server.start()

    async def _refresh(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.refresher.run()

    def stop(self) -> None:
        """Stop serving and refreshing, and remove the port directory."""
        self.server.stop()
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join(10)
        shutil.rmtree(self.ports, ignore_errors=True)
