"""``conveyor worker --metrics-port``: Prometheus metrics and probes, and ``conveyor health``.

Real worker processes; every scrape is parsed with prometheus-client's own parser.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.redis_server import RedisServer, free_port

from .harness import Cluster, WorkerProcess, wait_for
from .ledger_app import WORK

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` from the worker's metrics port: status code and body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics`` keyed by name and labels ({} while not serving)."""
    code, body = get(port, "/metrics")
    if code != 200:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or ``None`` when it is not there."""
    return samples.get((name, frozenset(labels.items())))


def health(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``conveyor health ARGS`` and return its result."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "health", *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_with_metrics(cluster: Cluster, *args: str) -> tuple[WorkerProcess, int]:
    """A worker serving metrics on a free port, refreshing backend figures every 0.2 s."""
    port = free_port()
    proc = cluster.start_worker("--metrics-port", str(port), "--metrics-refresh", "0.2", *args)
    return proc, port


@pytest.mark.slow
def test_metrics_reflect_queues_and_processed_jobs(cluster: Cluster) -> None:
    # Given a worker serving metrics that only works the default queue
    proc, port = start_with_metrics(cluster, "--queues", "default", "--concurrency", "4")
    wait_for(
        lambda: get(port, "/livez")[0] == 200,
        timeout=20,
        what="/livez to answer 200",
        detail=cluster.outputs,
    )

    # When 3 jobs wait in a queue it does not serve and 10 run in the default queue
    cluster.app.get_task(WORK).options(queue="parked", priority="high").enqueue(0)
    for n in range(1, 3):
        cluster.app.get_task(WORK).options(queue="parked", priority="high").enqueue(n)
    ids = cluster.enqueue_work(10, start=100)
    cluster.wait_ended(ids, timeout=30)

    # Then the scrape shows the parked jobs as queue depth, the 10 as processed,
    def settled() -> Samples | None:
        s = scrape(port)
        done = sample(s, "conveyor_worker_jobs_total", outcome="succeeded") == 10
        parked = (
            sample(s, "conveyor_queue_jobs", queue="parked", priority="high", state="ready") == 3
        )
        # the worker's heartbeat reaches the registry on its own schedule
        live = sample(s, "conveyor_workers_live") == 1
        return s if done and parked and live else None

    s = wait_for(
        settled,
        timeout=20,
        what="metrics to show 10 processed, 3 parked and 1 live worker",
        detail=lambda: f"{cluster.outputs()}\n{get(port, '/metrics')[1]}",
    )
    histogram = sample(
        s, "conveyor_job_duration_seconds_count", task=WORK, queue="default", outcome="succeeded"
    )
    assert histogram == 10
    assert sample(s, "conveyor_backend_up") == 1
    assert sample(s, "conveyor_lease_recoveries_total") == 0
    assert sample(s, "conveyor_fenced_completions_total") == 0
    assert sample(s, "conveyor_poison_pills_total") == 0
    [worker_id] = [dict(labels)["worker"] for name, labels in s if name == "conveyor_worker_info"]

    # and both probes pass once the heartbeat has reached the registry.
    wait_for(
        lambda: get(port, "/readyz")[0] == 200,
        timeout=20,
        what="/readyz to answer 200",
        detail=lambda: get(port, "/readyz")[1],
    )
    assert get(port, "/nope")[0] == 404

    # `conveyor health` agrees: the backend answers and the worker is live,
    env, cwd = cluster.env, cluster.dir
    assert health("--worker", worker_id, env=env, cwd=cwd).returncode == 0
    # an unknown worker is reported as missing,
    missing = health("--worker", "no-such-worker", env=env, cwd=cwd)
    assert missing.returncode == 1, missing.stderr
    assert "no-such-worker" in missing.stderr
    # and a backend nobody listens on is unavailable.
    down = health(
        "--url", f"redis://127.0.0.1:{free_port()}/0", "--timeout", "5", "--json", env=env, cwd=cwd
    )
    assert down.returncode == 3, down.stderr
    assert '"ok": false' in down.stdout

    # When the worker gets SIGTERM it exits cleanly and stops serving.
    proc.send(signal.SIGTERM)
    assert proc.wait(20) == 0, proc.output_tail()
    assert get(port, "/livez")[0] == 0


@pytest.mark.slow
def test_readyz_fails_when_the_backend_goes_away(tmp_path: Path) -> None:
    # Given a worker with metrics on a private redis-server
    server = RedisServer(tmp_path / "redis")
    server.start()
    cluster = Cluster(tmp_path, f"{server.url}?prefix=metrics-test")
    try:
        proc, port = start_with_metrics(cluster)
        wait_for(
            lambda: get(port, "/readyz")[0] == 200,
            timeout=20,
            what="/readyz to answer 200",
            detail=cluster.outputs,
        )
        assert health(env=cluster.env, cwd=cluster.dir).returncode == 0

        # When the server stops
        server.stop()

        # Then /readyz fails and says why, while /livez still passes (no restart storm),
        body = wait_for(
            lambda: (r := get(port, "/readyz"))[0] == 503 and r[1],
            timeout=30,
            what="/readyz to answer 503",
            detail=cluster.outputs,
        )
        assert "backend unreachable" in body
        assert get(port, "/livez")[0] == 200
        assert sample(scrape(port), "conveyor_backend_up") == 0
        # and `conveyor health` exits 3 (unavailable) with a clear message.
        down = health("--timeout", "3", env=cluster.env, cwd=cluster.dir)
        assert down.returncode == 3
        assert "backend unreachable" in down.stderr

        # When it comes back, the worker is ready again without a restart.
        server.start()
        wait_for(
            lambda: get(port, "/readyz")[0] == 200,
            timeout=30,
            what="/readyz to recover",
            detail=lambda: get(port, "/readyz")[1],
        )
        assert proc.alive()
    finally:
        cluster.close()
        server.stop()
