"""Progress and attempts across processes: a real ``conveyor worker`` on a SQLite store.

This process enqueues and reads through job handles; the worker runs an ``async def`` and a
plain ``def`` task that report progress many times, fail their first attempt and succeed on
the second. One of them waits, mid-run, for this test to see its report while it runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import Conveyor, State
from conveyor.handle import JobHandle

APP = textwrap.dedent(
    """
    import asyncio, os, time
    from pathlib import Path

    from conveyor import Conveyor, current_job

    app = Conveyor()
    STEPS = 25
    GO = Path(os.environ["GO_FILE"])


    @app.task(name="progress.async", queue="progress", retries=2, backoff=0)
    async def steps_async() -> int:
        job = current_job()
        for i in range(1, STEPS + 1):
            job.progress(i, STEPS, f"async {job.attempt}.{i}")
            await asyncio.sleep(0.005)
        if job.attempt == 1:
            raise ValueError("async: the first attempt fails")
        return STEPS


    @app.task(name="progress.sync", queue="progress", retries=2, backoff=0)
    def steps_sync() -> int:
        job = current_job()
        if job.attempt == 2:
            job.progress(0, STEPS, "waiting for the test")
            deadline = time.monotonic() + 30
            while not GO.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        for i in range(1, STEPS + 1):
            job.progress(i, STEPS, f"sync {job.attempt}.{i}")
            time.sleep(0.005)
        if job.attempt == 1:
            raise ValueError("sync: the first attempt fails")
        return STEPS
    """
)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.mark.timeout(120)
def test_a_worker_process_keeps_progress_and_every_attempt(tmp_path: Path) -> None:
    (tmp_path / "progress_app.py").write_text(APP)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    go = tmp_path / "go"
    producer = Conveyor(url)
    # Given two jobs enqueued by name from this process
    sync = producer.task_by_name("progress.sync").options(queue="progress", retries=2).enqueue()
    run = producer.task_by_name("progress.async").options(queue="progress", retries=2).enqueue()
    env = {**os.environ, "CONVEYOR_URL": url, "GO_FILE": str(go)}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *sys.path])
    # When a real worker process runs them
    command = ["worker", "--app", "progress_app:app", "--burst", "--queues", "progress"]
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *command, "--concurrency", "2"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Then a running job's report is readable while it runs (the first one is at once)
        wait_for("the sync job's second attempt to report", lambda: reported(sync, 0.0))
        assert sync.state() is State.RUNNING
        go.touch()
        worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        producer.close()
    err = log.read_text()
    assert worker.returncode == 0, err

    # Then each handle shows the last report of the attempt that succeeded
    reader = Conveyor(url)
    try:
        for kind, job in (("sync", sync), ("async", run)):
            handle = reader.job(job.id)
            assert handle.state() is State.SUCCEEDED
            progress = handle.progress()
            assert progress is not None
            assert (progress.done, progress.total, progress.note, progress.attempt) == (
                25.0,
                25.0,
                f"{kind} 2.25",
                2,
            )
            assert progress.describe() == f"25/25 (100%) {kind} 2.25"
            # and both attempts: failed, then succeeded, by this worker
            first, second = handle.attempts()
            assert (first.number, first.outcome) == (1, "failed")
            assert (second.number, second.outcome) == (2, "succeeded")
            assert first.error == f"ValueError: {kind}: the first attempt fails"
            assert first.traceback is not None and "the first attempt fails" in first.traceback
            assert first.worker_id == second.worker_id
            assert f"worker {first.worker_id} started" in err
            assert first.ended_at is not None and second.started_at is not None
            assert first.started_at is not None and first.started_at <= first.ended_at
            assert first.ended_at <= second.started_at
    finally:
        reader.close()


def reported(handle: JobHandle[object], done: float) -> bool:
    progress = handle.progress()
    return progress is not None and progress.done == done
