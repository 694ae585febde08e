"""The acceptance harness: worker processes, a ledger checker, and waits with deadlines.

* `Cluster` owns one SQLite file and one ledger in a test's ``tmp_path``, starts real
  ``python -m conveyor worker`` processes on them, and kills every process it started (by
  PID, only those) when the test ends.
* `check` is Jepsen's total-queue checker over the ledger: ``lost`` (enqueued, never
  finished), ``duplicated`` (more than one end record), ``unexpected`` (ran, never enqueued).
* `wait_for` polls a condition until a deadline and fails with a description: never a
  sleep-and-hope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from conveyor import Conveyor, JobRecord, State
from conveyor.backends import create_backend
from conveyor.backends.base import Backend
from conveyor.job import JobQuery, WorkerInfo

from .ledger_app import LEDGER_ENV, WORK, build_app

T = TypeVar("T")

APP_DIR = Path(__file__).resolve().parent
APP_REF = "ledger_app:app"

#: Fast lease settings (research/reliability.md §5.1): lease 2 s, reaper 0.5 s.
FAST_ENV = {
    "LEASE_SECONDS": "2",
    "REAPER_INTERVAL": "0.5",
    "WORKER_SLEEP": "0.1",
}


# -- waiting ------------------------------------------------------------------------------
def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)


# -- the ledger and its checker -----------------------------------------------------------
@dataclass(slots=True)
class Ledger:
    """The records read back from a ledger file."""

    records: list[dict[str, Any]]
    malformed: int = 0

    def events(self, event: str) -> list[dict[str, Any]]:
        """Records of one kind (``start`` or ``end``)."""
        return [r for r in self.records if r.get("event") == event]

    def count(self, event: str) -> int:
        """How many records of one kind."""
        return len(self.events(event))

    def job_ids(self, event: str) -> set[str]:
        """Ids of the jobs with at least one record of this kind."""
        return {r["job_id"] for r in self.events(event)}

    def by_job(self, event: str) -> Counter[str]:
        """Records of one kind per job id."""
        return Counter(r["job_id"] for r in self.events(event))

    def by_pid(self, event: str) -> Counter[int]:
        """Records of one kind per worker process id."""
        return Counter(int(r["pid"]) for r in self.events(event))


def read_ledger(path: Path) -> Ledger:
    """Parse the ledger; a torn line (none is expected) is counted, not fatal."""
    if not path.exists():
        return Ledger([])
    records: list[dict[str, Any]] = []
    malformed = 0
    for line in path.read_bytes().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            malformed += 1
    return Ledger(records, malformed)


@dataclass(slots=True)
class Verdict:
    """What the checker found. ``valid`` means nothing lost and nothing unexpected."""

    acknowledged: int
    finished: int
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    restarted: dict[str, int] = field(default_factory=dict)
    malformed: int = 0

    @property
    def valid(self) -> bool:
        """Jepsen's total-queue pass condition (duplicates are reported separately)."""
        return not self.lost and not self.unexpected and not self.malformed

    def summary(self) -> str:
        """One line for assertion messages."""
        return (
            f"acknowledged={self.acknowledged} finished={self.finished} "
            f"lost={len(self.lost)} {self.lost[:5]} duplicated={len(self.duplicated)} "
            f"{dict(list(self.duplicated.items())[:5])} unexpected={len(self.unexpected)} "
            f"restarted={len(self.restarted)} malformed={self.malformed}"
        )

    def assert_exactly_once(self) -> None:
        """Every acknowledged job finished exactly once, and nothing else ran."""
        assert self.valid and not self.duplicated, self.summary()


def check(
    acknowledged: Iterable[str], ledger: Ledger, *, never_finish: Iterable[str] = ()
) -> Verdict:
    """Compare enqueued ids with the ledger.

    ``never_finish`` names jobs expected to end without an end record (a poison pill): they
    are not counted as lost, and it is an error if they did finish.
    """
    acked = set(acknowledged)
    exempt = set(never_finish)
    ends = ledger.by_job("end")
    starts = ledger.by_job("start")
    return Verdict(
        acknowledged=len(acked),
        finished=len(ends),
        lost=sorted(j for j in acked - exempt if j not in ends),
        duplicated={j: n - 1 for j, n in ends.items() if n > 1},
        unexpected=sorted((set(starts) | set(ends)) - acked)
        + sorted(j for j in exempt if j in ends),
        restarted={j: n - 1 for j, n in starts.items() if n > 1},
        malformed=ledger.malformed,
    )


# -- worker processes ---------------------------------------------------------------------
class WorkerProcess:
    """One ``python -m conveyor worker`` (or other ``conveyor`` command) process; its
    output goes to a log file."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        cwd: Path,
        log: Path,
        *,
        command: str = "worker",
        app: str = APP_REF,
    ) -> None:
        self.args = list(args)
        self.log_path = log
        self._log = log.open("wb")
        argv = [sys.executable, "-m", "conveyor", command, "--app", app, *args]
        # A new session keeps a Ctrl-C at the terminal from reaching the workers: each test
        # decides which signals its workers get.
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started = time.monotonic()

    def __repr__(self) -> str:
        return f"<WorkerProcess pid={self.pid} rc={self.proc.returncode}>"

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        """Send one signal to this process (and only to it)."""
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit and return its exit code; fail after ``timeout``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # SIGUSR2 makes a worker print its tasks' and threads' stacks; SIGABRT makes
            # faulthandler (PYTHONFAULTHANDLER) print the threads' stacks of any process.
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.kill(self.pid, signal.SIGUSR2)
                time.sleep(0.5)
                os.kill(self.pid, signal.SIGABRT)
                self.proc.wait(5)
            raise AssertionError(
                f"worker {self.pid} still running after {timeout:g}s\n{self.output_tail()}"
            ) from None

    def output(self) -> str:
        """Everything the process wrote so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def output_tail(self, lines: int = 40) -> str:
        """The last lines of output, for failure messages."""
        tail = "\n".join(self.output().splitlines()[-lines:])
        return f"--- worker {self.pid} output (last {lines} lines) ---\n{tail}"

    def stop(self) -> None:
        """SIGKILL the process if it still runs, and reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self._log.close()


def backend_call(url: str, fn: Callable[[Backend], Awaitable[T]]) -> T:
    """Run one async backend read on a fresh connection, from sync test code."""

    async def run() -> T:
        backend = create_backend(url)
        await backend.open()
        try:
            return await fn(backend)
        finally:
            await backend.close()

    return asyncio.run(run())


class Cluster:
    """One store (a SQLite file unless ``url`` names another), one ledger, and the worker
    processes a test starts on them."""

    def __init__(self, tmp_path: Path, url: str | None = None) -> None:
        self.dir = tmp_path
        self.db = tmp_path / "conveyor.db"
        self.url = url or f"sqlite:///{self.db}"
        self.ledger_path = tmp_path / "ledger.jsonl"
        self.app: Conveyor = build_app(self.url)
        self.processes: list[WorkerProcess] = []
        self.env = self._base_env()

    def _base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WORKER_", "CONVEYOR_"))
            and k not in {"LEASE_SECONDS", "REAPER_INTERVAL", "MAX_RECOVERIES", "JOB_TIMEOUT"}
        }
        path = [str(APP_DIR), env.get("PYTHONPATH", "")]
        env.update(FAST_ENV)
        env.update(
            {
                "CONVEYOR_URL": self.url,
                LEDGER_ENV: str(self.ledger_path),
                "PYTHONPATH": os.pathsep.join(p for p in path if p),
                "PYTHONUNBUFFERED": "1",
                "PYTHONFAULTHANDLER": "1",
            }
        )
        return env

    # -- processes -------------------------------------------------------------------------
    def start_worker(
        self, *args: str, env: dict[str, str] | None = None, app: str = APP_REF
    ) -> WorkerProcess:
        """Start ``conveyor worker --app APP ARGS`` (default ledger_app:app) on this
        cluster's store."""
        n = len(self.processes)
        proc = WorkerProcess(
            ["--log-level", "info", *args],
            {**self.env, **(env or {})},
            self.dir,
            self.dir / f"worker-{n}.log",
            app=app,
        )
        self.processes.append(proc)
        return proc

    def start_scheduler(
        self, app: str, *args: str, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        """Start ``conveyor scheduler --app APP ARGS`` on this cluster's store."""
        n = len(self.processes)
        proc = WorkerProcess(
            ["--log-level", "info", *args],
            {**self.env, **(env or {})},
            self.dir,
            self.dir / f"scheduler-{n}.log",
            command="scheduler",
            app=app,
        )
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        """Kill every process this cluster started that is still running."""
        for proc in self.processes:
            proc.stop()
        self.app.close()

    def outputs(self) -> str:
        """The tail of every worker's output, for failure messages."""
        return "\n".join(p.output_tail() for p in self.processes)

    # -- enqueueing --------------------------------------------------------------------------
    def enqueue_work(
        self,
        count: int,
        *,
        seconds: float = 0.0,
        batch: int = 1000,
        start: int = 0,
        task_name: str = WORK,
    ) -> list[str]:
        """Enqueue ``count`` ``ledger.work`` (or ``task_name``) jobs in bulk; return their
        ids in order."""
        task = self.app.get_task(task_name)
        ids: list[str] = []
        for lo in range(start, start + count, batch):
            hi = min(lo + batch, start + count)
            ids += [h.id for h in task.enqueue_many([(i, seconds) for i in range(lo, hi)])]
        return ids

    # -- reading ---------------------------------------------------------------------------
    def ledger(self) -> Ledger:
        """The ledger as it is now."""
        return read_ledger(self.ledger_path)

    def check(self, acknowledged: Iterable[str], *, never_finish: Iterable[str] = ()) -> Verdict:
        """Run the checker on the current ledger."""
        return check(acknowledged, self.ledger(), never_finish=never_finish)

    def job(self, job_id: str) -> JobRecord:
        """One stored job, read now."""
        return self.app.job(job_id).info()

    def states(self, job_ids: Iterable[str]) -> Counter[State]:
        """How many of these jobs are in each state."""
        return Counter(self.job(j).state for j in job_ids)

    def counts(self) -> Counter[State]:
        """Jobs in each state, over the whole store."""
        stats = backend_call(self.url, lambda b: b.admin.stats())
        total: Counter[State] = Counter()
        for row in stats:
            total.update({s: n for s, n in row.counts.items() if n})
        return total

    def jobs(self, task: str | None = None) -> list[JobRecord]:
        """Every stored job (of one task), read now."""
        return backend_call(self.url, lambda b: b.admin.query(JobQuery(task=task, limit=100_000)))

    def ticks(self, schedule: str) -> list[float]:
        """The tick of each job a schedule entry enqueued (repeats kept), oldest first."""
        return sorted(
            datetime.fromisoformat(j.headers["tick"]).timestamp()
            for j in self.jobs()
            if j.headers.get("schedule") == schedule
        )

    def workers(self) -> list[WorkerInfo]:
        """Workers live in the registry."""
        return backend_call(self.url, lambda b: b.telemetry.workers())

    def wait_ended(self, job_ids: Iterable[str], timeout: float) -> Ledger:
        """Wait until every job has an end record in the ledger."""
        wanted = set(job_ids)

        def done() -> Ledger | None:
            ledger = self.ledger()
            return ledger if wanted <= ledger.job_ids("end") else None

        return wait_for(
            done,
            timeout=timeout,
            interval=0.1,
            what=f"{len(wanted)} jobs to finish",
            detail=lambda: (
                f"finished {len(wanted & self.ledger().job_ids('end'))}/{len(wanted)}\n"
                + self.outputs()
            ),
        )

    def wait_started(self, count: int, timeout: float) -> Ledger:
        """Wait until the ledger holds at least ``count`` start records."""

        def enough() -> Ledger | None:
            ledger = self.ledger()
            return ledger if ledger.count("start") >= count else None

        return wait_for(
            enough,
            timeout=timeout,
            what=f"{count} job starts",
            detail=lambda: f"started {self.ledger().count('start')}\n{self.outputs()}",
        )

    def wait_output(self, proc: WorkerProcess, text: str, timeout: float) -> None:
        """Wait until a worker has printed ``text``."""
        wait_for(
            lambda: text in proc.output(),
            timeout=timeout,
            what=f"{text!r} in the output",
            detail=proc.output_tail,
        )
