"""A real ``conveyor worker`` process: its /metrics series, /debug/stacks, /debug/profile and
``conveyor debug`` fetching them.

One worker serves the whole module (started once, stopped at the end by its pid). It runs
an async job parked in an await, a plain-def job burning CPU, and jobs that succeed or fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.cli_support import Run, conveyor_cli
from tests.integration.deploy_support import tool

from conveyor import Conveyor

APP = textwrap.dedent(
    """
    import asyncio, os, time

    from conveyor import Conveyor

    app = Conveyor()


    async def parked_coroutine() -> None:
        await asyncio.sleep(600)


    @app.task(name="dbg.park", queue="slow")
    async def park() -> None:
        await parked_coroutine()


    def burn_cpu(stop_file: str) -> int:
        end, n = time.monotonic() + 60, 0
        while time.monotonic() < end and not os.path.exists(stop_file):
            n += sum(i * i for i in range(2000))
        return n


    @app.task(name="dbg.spin", queue="slow")
    def spin(stop_file: str) -> int:
        return burn_cpu(stop_file)


    @app.task(name="dbg.ok", queue="fast")
    def ok() -> None: ...


    @app.task(name="dbg.bad", queue="fast", retries=0)
    def bad() -> None:
        raise ValueError("no")
    """
)


@dataclass
class RunningWorker:
    base: str
    port: int
    pid: int
    url: str
    run_dir: Path
    cli: Run


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.05)


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    tmp = tmp_path_factory.mktemp("debug")
    (tmp / "dbg_app.py").write_text(APP)
    url = f"sqlite:///{tmp / 'jobs.db'}"
    run_dir = tmp / ".conveyor"
    ports = run_dir / "metrics-ports"
    ports.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DEBUG_TOKEN"}
    env.update(
        CONVEYOR_URL=url,
        CONVEYOR_METRICS_PORT_DIR=str(ports),  # the worker publishes its port here
        PYTHONPATH=os.pathsep.join([str(tmp), *sys.path]),
    )
    producer = Conveyor(url)
    producer.task_by_name("dbg.ok").options(queue="fast").enqueue()  # before the worker starts
    producer.task_by_name("dbg.ok").options(queue="unserved").enqueue()  # no worker takes it
    producer.close()
    log = (tmp / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--app", "dbg_app:app", "-c", "4",
         "--queues", "slow,fast", "--metrics-port", "0", "--metrics-refresh", "0.5",
         "--grace-period", "1"],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = ports / str(proc.pid)
        wait_for(port_file.exists, 30, "the worker did not publish its metrics port")
        port = int(port_file.read_text())
        yield RunningWorker(
            f"http://127.0.0.1:{port}", port, proc.pid, url, run_dir, conveyor_cli(tmp, env)
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the second one stops at once
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def enqueue(worker: RunningWorker, name: str, *args: object) -> str:
    # By name: this process does not import the tasks, so it names their queue too.
    queue = "slow" if name in ("dbg.park", "dbg.spin") else "fast"
    app = Conveyor(worker.url)
    try:
        return app.task_by_name(name).options(queue=queue).enqueue(*args).id
    finally:
        app.close()


def scrape(worker: RunningWorker) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, body = get(f"{worker.base}/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_metrics_have_the_oldest_wait_and_the_attempts(worker: RunningWorker) -> None:
    # Given a job that succeeded before, and one that fails now
    enqueue(worker, "dbg.bad")

    def attempts(task: str, result: str) -> float | None:
        key = frozenset({("task", task), ("queue", "fast"), ("result", result)})
        return scrape(worker).get(("conveyor_job_attempts_total", key))

    wait_for(lambda: attempts("dbg.bad", "failed") == 1, 30, "the failure was not counted")
    assert attempts("dbg.ok", "succeeded") == 1
    assert attempts("dbg.ok", "failed") == 0

    # Then the queue nobody serves has a job waiting since before the worker started, and
    # the worker's queue, emptied, none
    def wait(queue: str) -> float | None:
        key = ("conveyor_queue_oldest_wait_seconds", frozenset({("queue", queue)}))
        return scrape(worker).get(key)

    wait_for(lambda: wait("fast") == 0, 30, "the fast queue never showed no wait")
    first = wait("unserved")
    assert first is not None and first > 0
    wait_for(lambda: (wait("unserved") or 0) > first, 30, "the unserved job's wait did not grow")
    # The exposition was parsed above by prometheus-client; promtool lints it too
    promtool = tool("promtool", "scripts/test.sh takes it from Debian's prometheus package")
    _, body = get(f"{worker.base}/metrics")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stderr


def test_stacks_show_the_parked_task_and_every_thread(worker: RunningWorker) -> None:
    job_id = enqueue(worker, "dbg.park")
    # When the job is parked in its await
    status, body = get(f"{worker.base}/debug/stacks")
    wait_for(
        lambda: b"in parked_coroutine" in get(f"{worker.base}/debug/stacks")[1],
        30,
        "the parked job's await never showed",
    )
    status, body = get(f"{worker.base}/debug/stacks")
    text = body.decode()
    # Then the job's asyncio task shows its chain of awaits, down to the sleep
    assert status == 200
    task = text.split(f"--- asyncio task 'job-{job_id}'")[1].split("\n---")[0]
    assert task.index("in park") < task.index("in parked_coroutine") < task.index("in sleep")
    assert "waiting on <Future pending" in task
    # and every thread is there, the main one (the event loop) included
    assert "--- thread 'MainThread'" in text and "--- thread 'conveyor-metrics'" in text
    status, body = get(f"{worker.base}/debug/stacks?format=json")
    dump = json.loads(body)
    assert dump["pid"] == worker.pid
    assert any(t["name"] == f"job-{job_id}" for t in dump["tasks"])
    # The CLI prints the same, given the port, or the worker's id (found through the port
    # the worker published in the run directory)
    done = worker.cli("debug", "stacks", str(worker.port))
    assert done.returncode == 0, done.stderr
    assert "in parked_coroutine" in done.stdout
    listed = worker.cli("workers", "--json")
    [worker_id] = [w["id"] for w in json.loads(listed.stdout) if w["pid"] == worker.pid]
    done = worker.cli("debug", "stacks", worker_id, "--run-dir", str(worker.run_dir))
    assert done.returncode == 0, done.stderr
    assert "in parked_coroutine" in done.stdout


def test_profile_shows_where_the_cpu_goes(worker: RunningWorker, tmp_path: Path) -> None:
    # Given a plain-def job burning CPU in its thread until told to stop
    stop = tmp_path / "stop"
    enqueue(worker, "dbg.spin", str(stop))
    try:
        wait_for(
            lambda: b"in burn_cpu" in get(f"{worker.base}/debug/stacks")[1], 30, "spin never ran"
        )
        # When a speedscope profile is taken with the CLI
        out = tmp_path / "p.json"
        done = worker.cli(
            "debug", "profile", f"127.0.0.1:{worker.port}", "--seconds", "1.5",
            "--format", "speedscope", "-o", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        profile = json.loads(out.read_text())
        # Then the burning function is in it, with CPU time; the parked job, never on a
        # CPU, is not
        names = [f["name"] for f in profile["shared"]["frames"]]
        assert "burn_cpu" in names and "parked_coroutine" not in names
        assert profile["profiles"][0]["endValue"] > 0
        # and the HTML page is pyinstrument's
        status, body = get(f"{worker.base}/debug/profile?seconds=0.5")
        assert status == 200 and b"pyinstrument" in body
    finally:
        stop.touch()


def test_profile_answers_in_json(worker: RunningWorker, tmp_path: Path) -> None:
    # Given a profile written with --json
    out = tmp_path / "p.html"
    done = worker.cli(
        "debug", "profile", f"127.0.0.1:{worker.port}", "--seconds", "0.2", "-o", str(out),
        "--json",
    )  # fmt: skip
    # Then stdout is one JSON document saying what was written, and the file is there
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout)
    assert written == {
        "path": str(out.resolve()),
        "format": "html",
        "seconds": 0.2,
        "bytes": out.stat().st_size,
    }
    assert b"pyinstrument" in out.read_bytes()


def test_bad_requests_and_foreign_hosts_are_refused(worker: RunningWorker) -> None:
    status, body = get(f"{worker.base}/debug/profile?seconds=600")
    assert status == 400 and b"at most 60" in body
    status, body = get(f"{worker.base}/debug/stacks", {"Host": "evil.example:80"})
    assert status == 403 and b"DNS rebinding" in body
    done = worker.cli("debug", "stacks", "127.0.0.1:1")
    assert done.returncode == 3 and "nothing answers" in done.stderr
