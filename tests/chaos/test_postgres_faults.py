"""PostgreSQL faults with real processes: a server restart while a producer and two worker
processes run, and enqueue while the server is down.

Each test starts its own PostgreSQL with scripts/postgres.sh (own data directory and port,
initdb'd on first use) and stops it afterwards, even on failure. Without PostgreSQL on the
machine the tests skip locally and fail under CI, like every test that needs a server.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster, wait_for

from conveyor import BackendUnavailable, State
from conveyor.job import NewJob

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


class PgServer:
    """One PostgreSQL cluster in ``dir``, driven through scripts/postgres.sh."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.url = ""

    def _run(self, action: str, mode: str = "fast") -> str:
        result = subprocess.run(
            ["bash", str(SCRIPT), action, str(self.dir)], capture_output=True, text=True,
            timeout=180, check=False, env={**os.environ, "MODE": mode},
        )
        if result.returncode != 0:
            message = f"scripts/postgres.sh {action} failed:\n{result.stderr[-2000:]}"
            if action == "start" and not os.environ.get("CI"):
                pytest.skip(message)
            raise AssertionError(message)
        return result.stdout

    def start(self) -> None:
        """Start (initdb on first use) and remember the URL."""
        line = self._run("start").strip().splitlines()[-1]
        self.url = line.partition("=")[2]

    def stop(self) -> None:
        """Fast shutdown."""
        self._run("stop")

    def restart(self, mode: str) -> None:
        """``pg_ctl restart -m <mode>``: every connection is cut."""
        self._run("restart", mode)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PgServer]:
    s = PgServer(Path(f"/tmp/conveyor-chaos-pg-{os.getpid()}-{os.urandom(3).hex()}"))
    s.start()
    try:
        yield s
    finally:
        s.stop()
        subprocess.run(["rm", "-rf", str(s.dir)], check=False)


@pytest.fixture
def cluster(tmp_path: Path, server: PgServer) -> Iterator[Cluster]:
    c = Cluster(tmp_path, f"{server.url}?schema=chaos_{os.urandom(4).hex()}")
    try:
        yield c
    finally:
        c.close()


class Producer(threading.Thread):
    """Enqueues small batches until stopped. Ids are made before the call, so a job whose
    enqueue raised (the commit may still have happened) is known too."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.app = cluster.app
        self.task = cluster.app.get_task("ledger.work")
        self.acknowledged: list[str] = []
        self.failed: set[str] = set()
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            jobs: list[NewJob] = [self.app.build(self.task.call(n + i)) for i in range(5)]
            n += 5
            try:
                self.acknowledged += [r.id for r in self.app.backend.enqueue_sync(jobs)]
            except BackendUnavailable as exc:
                self.errors.append(str(exc))
                self.failed.update(j.id for j in jobs)
                self.halt.wait(0.05)
            self.halt.wait(0.005)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_under_load_loses_no_committed_job(
    cluster: Cluster, server: PgServer, mode: str
) -> None:
    # Given two workers and a producer running against PostgreSQL
    workers = [cluster.start_worker("--concurrency", "5") for _ in range(2)]
    producer = Producer(cluster)
    producer.start()
    try:
        wait_for(lambda: len(producer.acknowledged) >= 200, timeout=30, what="200 enqueues",
                 detail=cluster.outputs)

        # When the server restarts, cutting every connection
        server.restart(mode)
        restarted = len(producer.acknowledged)

        # Then producing resumes,
        wait_for(lambda: len(producer.acknowledged) >= restarted + 200, timeout=30,
                 what="200 more enqueues after the restart", detail=cluster.outputs)
    finally:
        producer.halt.set()
        producer.join(30)

    # and every committed job runs to its end, the workers never having exited.
    ids = producer.acknowledged
    cluster.wait_ended(ids, timeout=60)
    verdict = cluster.check(ids)
    assert not verdict.lost, verdict.summary()
    # A job whose enqueue raised may still have committed just before the cut: it may run
    # (Jepsen's "recovered"), but nothing that was never enqueued may.
    assert set(verdict.unexpected) <= producer.failed, verdict.summary()
    assert all(w.alive() for w in workers), cluster.outputs()
    wait_for(
        lambda: cluster.counts().get(State.SUCCEEDED, 0) >= len(ids), timeout=30,
        what="the store to agree", detail=lambda: str(cluster.counts()),
    )


@pytest.mark.slow
def test_enqueue_while_the_server_is_down_fails_fast_then_recovers(
    cluster: Cluster, server: PgServer
) -> None:
    task = cluster.app.get_task("ledger.work")
    assert task.enqueue(1).state() is State.READY  # connected, pools warm

    # When the server is down
    server.stop()

    # Then enqueues (sync and async) raise BackendUnavailable quickly, every time
    for _ in range(3):
        begin = time.monotonic()
        with pytest.raises(BackendUnavailable, match="unavailable"):
            task.enqueue(2)
        assert time.monotonic() - begin < 10.0

    async def enqueue_async() -> None:
        with pytest.raises(BackendUnavailable):
            await task.enqueue_async(3)

    begin = time.monotonic()
    asyncio.run(enqueue_async())
    assert time.monotonic() - begin < 15.0

    # And once it is back, the same app enqueues again without a restart
    server.start()
    handle = wait_for(lambda: _try_enqueue(task), timeout=20, what="an enqueue to succeed")
    assert handle.state() is State.READY


def _try_enqueue(task: object) -> object:
    try:
        return task.enqueue(4)  # type: ignore[attr-defined]
    except BackendUnavailable:
        return None
