"""A job's story on Redis across processes: a real ``conveyor worker`` reports progress
into a Redis store and fails a first attempt; this process reads both through job handles."""

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
from tests.contract.support import server_url

from conveyor import Conveyor, State
from conveyor.tracebacks import MARKER

APP = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    from conveyor import Conveyor, current_job

    app = Conveyor()
    GO = Path(os.environ["GO_FILE"])


    def resize(step: int) -> None:
        raise ValueError(f"cannot resize step {step}")


    @app.task(name="story.resize", queue="story", retries=2, backoff=0)
    def steps() -> int:
        job = current_job()
        job.progress(1, 4, f"attempt {job.attempt} started")
        if job.attempt == 1:
            resize(2)
        deadline = time.monotonic() + 30
        while not GO.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        job.progress(4, 4, "résumé ✓")
        return 4
    """
)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.mark.timeout(120)
def test_a_worker_keeps_progress_and_attempts_in_redis(tmp_path: Path) -> None:
    (tmp_path / "story_app.py").write_text(APP)
    url = f"{server_url('redis')}?prefix=story-{os.urandom(6).hex()}"
    go = tmp_path / "go"
    producer = Conveyor(url)
    # Given a job enqueued by name from this process
    job = producer.task_by_name("story.resize").options(queue="story", retries=2).enqueue()
    env = {**os.environ, "CONVEYOR_URL": url, "GO_FILE": str(go)}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *sys.path])
    # When a real worker process runs it: the first attempt fails, the second waits
    command = ["worker", "--app", "story_app:app", "--burst", "--queues", "story"]
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *command],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Then the running second attempt's report is readable while it runs
        handle = producer.job(job.id)

        def second_attempt_reported() -> bool:
            progress = handle.progress()
            return progress is not None and progress.attempt == 2

        wait_for("the second attempt's report", second_attempt_reported)
        running = handle.progress()
        assert running is not None and running.describe() == "1/4 (25%) attempt 2 started"
        first, second = handle.attempts()
        assert (first.outcome, second.outcome) == ("failed", "running")
        go.touch()
        worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        producer.close()
    output_text = log.read_text()
    assert worker.returncode == 0, output_text

    # Then the handle shows the last report and both attempts, the failure's traceback
    # starting at the task's own frames
    reader = Conveyor(url)
    try:
        handle = reader.job(job.id)
        assert handle.state() is State.SUCCEEDED
        progress = handle.progress()
        assert progress is not None and progress.describe() == "4/4 (100%) résumé ✓"
        first, second = handle.attempts()
        assert (first.number, first.outcome, second.number, second.outcome) == (
            1,
            "failed",
            2,
            "succeeded",
        )
        assert first.error == "ValueError: cannot resize step 2"
        assert first.traceback is not None and MARKER not in first.traceback
        assert first.traceback.startswith("Traceback") and "story_app.py" in first.traceback
        assert "in resize" in first.traceback and f"\n{first.error}\n" in first.traceback
        assert first.worker_id == second.worker_id and first.worker_id in output_text
        assert first.started_at is not None and first.ended_at is not None
        assert second.started_at is not None and second.ended_at is not None
        assert first.started_at <= first.ended_at <= second.started_at <= second.ended_at
    finally:
        reader.close()
