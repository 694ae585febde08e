"""``conveyor run --metrics-port``: one endpoint for every pool, real processes on SQLite.

Also covers what the same workers do beside their jobs: the throughput history they add to
the backend and the wait alert one of them reports.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.deploy_support import tool
from tests.integration.redis_server import free_port

from .harness import Cluster, backend_call, wait_for
from .ledger_app import WORK
from .supervised import Supervised
from .test_metrics import Samples, get, sample, scrape

pytestmark = pytest.mark.slow

POOLS = {
    "JOBS_WORKER_PROCESSES": "2",
    "MAIL_WORKER_PROCESSES": "1",
    "ALERT_WAIT_QUEUES": "parked=1",  # nobody serves `parked`: its jobs wait for ever
    "ALERT_INTERVAL": "0.2",
    "HISTORY_HOURS": "1",
}
ALERT = "queue 'parked': the oldest ready job has waited"


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster on SQLite only (the supervisor's behaviour does not depend on the store)."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def series(s: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    """The label sets of every sample ``name`` whose labels include ``labels``."""
    return [
        dict(ls)
        for (n, ls) in s
        if n == name and all(dict(ls).get(k) == v for k, v in labels.items())
    ]


def total(s: Samples, name: str, **labels: str) -> float:
    """The sum of every sample ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, ls), v in s.items()
        if n == name and all(dict(ls).get(k) == v2 for k, v2 in labels.items())
    )


def test_one_endpoint_for_every_pool_counts_nothing_twice(sqlite_cluster: Cluster) -> None:
    cluster = sqlite_cluster
    port = free_port()
    # Given a supervisor serving metrics, with pools jobs (2 processes) and mail (1)
    sup = Supervised(cluster, "jobs", "mail", env={**POOLS, "SUPERVISOR_METRICS_PORT": str(port)})
    try:
        sup.wait_workers(3)
        wait_for(
            lambda: get(port, "/readyz")[0] == 200,
            timeout=30,
            what="the supervisor's /readyz",
            detail=lambda: get(port, "/readyz")[1],
        )
        assert get(port, "/livez")[0] == 200

        # When 10 jobs run in the jobs pool, 5 in the mail pool and 3 wait where nobody serves
        task = cluster.app.get_task(WORK)
        ids = cluster.enqueue_work(10)
        ids += [task.options(queue="mail").enqueue(n).id for n in range(100, 105)]
        for n in range(200, 203):
            task.options(queue="parked", priority="high").enqueue(n)
        cluster.wait_ended(ids, timeout=60)

        # Then one scrape counts each job once, per worker, with its pool
        def settled() -> Samples | None:
            s = scrape(port)
            done = total(s, "conveyor_worker_jobs_total", outcome="succeeded") == 15
            parked = (
                sample(s, "conveyor_queue_jobs", queue="parked", priority="high", state="ready")
                == 3
            )
            return s if done and parked else None

        s = wait_for(
            settled,
            timeout=30,
            what="15 succeeded and 3 parked in one scrape",
            detail=lambda: f"{sup.output_tail()}\n{get(port, '/metrics')[1]}",
        )
        assert total(s, "conveyor_worker_jobs_total", outcome="succeeded", pool="jobs") == 10
        assert total(s, "conveyor_worker_jobs_total", outcome="succeeded", pool="mail") == 5
        assert total(s, "conveyor_job_duration_seconds_count", task=WORK) == 15
        assert len(series(s, "conveyor_worker_info")) == 3
        assert {w["pool"] for w in series(s, "conveyor_worker_info")} == {"jobs", "mail"}
        # and the store's figures appear once, from the supervisor's own read.
        assert len(series(s, "conveyor_queue_jobs", queue="parked", state="ready")) == 1
        assert not [ls for ls in series(s, "conveyor_queue_jobs") if "worker" in ls]
        assert series(s, "conveyor_workers_live") == [{}]
        assert sample(s, "conveyor_workers_live") == 3
        assert sample(s, "conveyor_backend_up") == 1
        assert sample(s, "conveyor_supervisor_processes_up", pool="jobs") == 2
        assert sample(s, "conveyor_supervisor_processes", pool="mail") == 1
        # and the merged page passes Prometheus's own lint.
        promtool = tool("promtool", "scripts/test.sh takes it from Debian's prometheus package")
        lint = subprocess.run(
            [promtool, "check", "metrics"],
            input=get(port, "/metrics")[1],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

        # The history in the backend counts the same 15 jobs, per queue,
        def history() -> dict[str, int] | None:
            points = backend_call(cluster.url, lambda b: b.telemetry.history(0))
            by_queue: dict[str, int] = {}
            for p in points:
                by_queue[p.queue] = by_queue.get(p.queue, 0) + p.succeeded
            return by_queue if sum(by_queue.values()) == 15 else None

        by_queue = wait_for(
            history, timeout=30, what="15 jobs in the throughput history", detail=sup.output_tail
        )
        assert by_queue == {"default": 10, "mail": 5}
        # and exactly one worker reported the parked queue's wait, once.
        wait_for(
            lambda: ALERT in sup.output(), timeout=30, what="the wait alert", detail=sup.output_tail
        )
        assert sup.output().count(ALERT) == 1

        # When a worker does not answer (stopped), the scrape skips it and counts it
        state = sup.state()
        assert state is not None
        mail_pid = next(
            w["pid"] for p in state["pools"] if p["name"] == "mail" for w in p["workers"]
        )
        before = sample(scrape(port), "conveyor_supervisor_scrape_failures_total", pool="mail")
        assert before is not None
        os.kill(mail_pid, signal.SIGSTOP)
        try:
            s = scrape(port)
            failures = sample(s, "conveyor_supervisor_scrape_failures_total", pool="mail")
            assert failures == before + 1
            assert total(s, "conveyor_worker_jobs_total", pool="jobs", outcome="succeeded") == 10
            assert total(s, "conveyor_worker_jobs_total", pool="mail") == 0
        finally:
            os.kill(mail_pid, signal.SIGCONT)

        # When it is killed, the supervisor replaces it and counts a crash for its pool.
        os.kill(mail_pid, signal.SIGKILL)
        wait_for(
            lambda: (
                (s2 := scrape(port))
                and sample(s2, "conveyor_supervisor_restarts_total", pool="mail", reason="crashed")
                == 1
            ),
            timeout=30,
            what="a crash counted for the mail pool",
            detail=sup.output_tail,
        )
        wait_for(
            lambda: get(port, "/readyz")[0] == 200,
            timeout=30,
            what="/readyz again once the mail worker is replaced",
            detail=lambda: get(port, "/readyz")[1],
        )

        # When the supervisor stops, its endpoint goes away with it.
        sup.send(signal.SIGTERM)
        assert sup.wait(60) == 0, sup.output_tail()
        assert get(port, "/livez")[0] == 0
        assert not (sup.run_dir / "metrics-ports").exists()
    finally:
        sup.close()


def test_a_port_in_use_stops_the_supervisor_at_start(sqlite_cluster: Cluster) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sup = Supervised(sqlite_cluster, "jobs", env={"SUPERVISOR_METRICS_PORT": str(port)})
        try:
            assert sup.wait(60) == 2, sup.output_tail()
            assert "cannot serve metrics" in sup.output()
            assert sup.state() is None  # no worker was started
        finally:
            sup.close()
