"""What the chaos tests share: a private PostgreSQL, a producer thread, a ledger read as it
grows, and the kill storm with its checks.

* `PgServer` drives scripts/postgres.sh on a directory of its own (the Redis counterpart is
  `tests.integration.redis_server.RedisServer`); conftest.py starts one of each per package.
* `Producer` enqueues until told to stop and keeps what the store acknowledged, and what it
  may or may not have stored (the ids are made before the call).
* `KillStorm` keeps a fleet of real ``conveyor worker`` processes, SIGKILLs a random one that
  is in the middle of a job, and starts a replacement, as a supervisor would.
* `StormFigures` is what a storm measured; `report` prints it in pytest's terminal summary.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster, Ledger, Verdict, WorkerProcess, wait_for

from conveyor import BackendUnavailable, JobRecord, State
from conveyor.job import NewJob

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"

#: Lines for the terminal summary (conftest.py prints them at the end of the run).
REPORTS: list[str] = []


def report(line: str) -> None:
    """Show ``line`` in the run's terminal summary (and in the captured output)."""
    REPORTS.append(line)
    print(line)


# -- a private PostgreSQL -------------------------------------------------------------------
class PgServer:
    """One PostgreSQL cluster in ``dir``, driven through scripts/postgres.sh."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.url = ""

    def _run(self, action: str, mode: str = "fast") -> str:
        result = subprocess.run(
            ["bash", str(SCRIPT), action, str(self.dir)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, "MODE": mode},
        )
        if result.returncode != 0:
            message = f"scripts/postgres.sh {action} failed:\n{result.stderr[-2000:]}"
            if action == "start" and not os.environ.get("CI"):
                pytest.skip(message)
            raise AssertionError(message)
        return result.stdout

    def start(self) -> None:
        """Start (initdb on first use; a no-op when it runs) and remember the URL."""
        line = self._run("start").strip().splitlines()[-1]
        self.url = line.partition("=")[2]

    def stop(self) -> None:
        """Fast shutdown."""
        self._run("stop")

    def restart(self, mode: str) -> None:
        """``pg_ctl restart -m <mode>``: every connection is cut."""
        self._run("restart", mode)


# -- producing ------------------------------------------------------------------------------
class Producer(threading.Thread):
    """Enqueues batches of ``ledger.work`` until stopped.

    Ids are made before the call, so a job whose enqueue raised (the store may still have
    kept it) is known too: Jepsen's "recovered" when it runs.
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        batch: int = 5,
        pause: float = 0.005,
        durations: Sequence[float] = (0.0,),
        seed: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.app = cluster.app
        self.task = cluster.app.get_task("ledger.work")
        self.batch = batch
        self.pause = pause
        self.durations = durations
        self.rng = random.Random(seed)
        self.acknowledged: list[str] = []
        self.failed: set[str] = set()
        self.errors: list[str] = []
        self.halt = threading.Event()
        self._n = 0

    def enqueue(self, count: int) -> None:
        """Enqueue ``count`` jobs now, in one call; an outage is recorded, not raised."""
        jobs: list[NewJob] = []
        for _ in range(count):
            self._n += 1
            jobs.append(self.app.build(self.task.call(self._n, self.rng.choice(self.durations))))
        try:
            self.acknowledged += [r.id for r in self.app.backend.enqueue_sync(jobs)]
        except BackendUnavailable as exc:
            self.errors.append(str(exc))
            self.failed.update(j.id for j in jobs)
            self.halt.wait(0.05)

    def run(self) -> None:
        while not self.halt.is_set():
            self.enqueue(self.batch)
            self.halt.wait(self.pause)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop producing and wait for the thread."""
        self.halt.set()
        self.join(timeout)
        assert not self.is_alive(), "the producer is stuck in an enqueue"


def outage_figures(producer: Producer, verdict: Verdict) -> str:
    """What a server outage under load came to, for `report`."""
    ran = len(set(verdict.unexpected) & producer.failed)
    return (
        f"acknowledged={verdict.acknowledged} failed enqueues={len(producer.failed)} "
        f"(of which ran anyway: {ran}) lost={len(verdict.lost)} "
        f"duplicates={sum(verdict.duplicated.values())}"
    )


def wait_all_succeeded(
    cluster: Cluster,
    acknowledged: Sequence[str],
    *,
    maybe: set[str] | frozenset[str] = frozenset(),
    timeout: float = 30.0,
) -> list[JobRecord]:
    """Wait until every job in the store has succeeded (none dead, none stuck), then check
    that they are the acknowledged ones plus perhaps some of ``maybe`` (enqueues that raised
    but may have been stored)."""

    def settled() -> list[JobRecord] | None:
        records = cluster.jobs()
        return records if {r.state for r in records} == {State.SUCCEEDED} else None

    records = wait_for(
        settled,
        timeout=timeout,
        interval=0.2,
        what="every stored job to have succeeded",
        detail=lambda: str(Counter(r.state.value for r in cluster.jobs())),
    )
    assert records is not None
    stored = {r.id for r in records}
    assert set(acknowledged) <= stored, sorted(set(acknowledged) - stored)[:5]
    assert stored - set(acknowledged) <= maybe, sorted(stored - set(acknowledged) - maybe)[:5]
    return records


# -- the ledger, read as it grows ---------------------------------------------------------
class LedgerTail:
    """Reads only what was appended since the last `refresh`: which jobs each process has
    started and not yet ended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.running: dict[int, set[str]] = defaultdict(set)
        self.ends = 0

    def refresh(self) -> LedgerTail:
        """Take in the lines appended since last time (a torn last line waits for more)."""
        if not self.path.exists():
            return self
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            record = json.loads(line)
            pid, job_id = int(record["pid"]), record["job_id"]
            if record["event"] == "start":
                self.running[pid].add(job_id)
            elif record["event"] == "end":
                self.running[pid].discard(job_id)
                self.ends += 1
        return self


# -- the storm ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Kill:
    """One SIGKILL: which process, when (``time.time()``, the ledger's clock), and how many
    jobs it had started and not ended just before."""

    pid: int
    t: float
    running: int


class KillStorm:
    """A fleet of ``size`` workers on ``cluster``; `kill_one` SIGKILLs a random worker that is
    in the middle of a job and starts a replacement."""

    def __init__(
        self,
        cluster: Cluster,
        rng: random.Random,
        *,
        size: int,
        concurrency: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.size = size
        self.concurrency = concurrency
        self.env = env or {}
        self.fleet: list[WorkerProcess] = []
        self.kills: list[Kill] = []
        self.tail = LedgerTail(cluster.ledger_path)

    def start(self) -> None:
        """Start the fleet."""
        while len(self.fleet) < self.size:
            self.fleet.append(self._start_worker())

    def _start_worker(self) -> WorkerProcess:
        return self.cluster.start_worker("--concurrency", str(self.concurrency), env=self.env)

    def busy(self) -> list[WorkerProcess]:
        """Workers of the fleet with a job started and not ended, per the ledger."""
        self.tail.refresh()
        return [w for w in self.fleet if self.tail.running.get(w.pid)]

    def kill_one(self, timeout: float) -> Kill:
        """Wait for progress since the last kill and a worker in the middle of a job, then
        SIGKILL it, reap it and start its replacement."""
        ends = self.tail.ends
        wait_for(
            lambda: self.tail.refresh().ends > ends and self.busy(),
            timeout=timeout,
            what=f"a job to end and a worker to be mid-job, for kill {len(self.kills) + 1} "
            f"(the storm's deadline)",
            detail=self.outputs,
        )
        # A short random pause moves the kill to a random point of the victim's jobs.
        time.sleep(self.rng.uniform(0.0, 0.3))
        victim = self.rng.choice(self.busy() or self.fleet)
        running = len(self.tail.running.get(victim.pid, ()))
        kill = Kill(victim.pid, time.time(), running)
        victim.send(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL, victim.output_tail()
        self.kills.append(kill)
        self.fleet[self.fleet.index(victim)] = self._start_worker()
        return kill

    def outputs(self) -> str:
        """The tail of each running worker's output, for failure messages."""
        return "\n".join(w.output_tail() for w in self.fleet)

    def stop(self, timeout: float) -> None:
        """SIGTERM the fleet; every survivor must exit cleanly."""
        for worker in self.fleet:
            worker.send(signal.SIGTERM)
        for worker in self.fleet:
            assert worker.wait(timeout) == 0, worker.output_tail()


# -- checking the ledger against the kills ------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    """One execution of a job in one process, from the ledger."""

    job_id: str
    pid: int
    start: float
    end: float | None  # its end record, else its process's kill, else None
    cut: bool = False  # ended by its process's kill


def runs(ledger: Ledger, kills: Sequence[Kill]) -> dict[str, list[Run]]:
    """Every job's executions, oldest first. A run without an end record ends when its
    process was killed (the kill is taken before the signal, so this errs early)."""
    killed = {k.pid: k.t for k in kills}
    ends: dict[tuple[str, int], list[float]] = defaultdict(list)
    for e in ledger.events("end"):
        ends[e["job_id"], int(e["pid"])].append(float(e["t"]))
    out: dict[str, list[Run]] = defaultdict(list)
    for s in sorted(ledger.events("start"), key=lambda r: float(r["t"])):
        job_id, pid, t = s["job_id"], int(s["pid"]), float(s["t"])
        own = ends[job_id, pid]
        if own:
            out[job_id].append(Run(job_id, pid, t, own.pop(0)))
        else:
            out[job_id].append(Run(job_id, pid, t, killed.get(pid), cut=pid in killed))
    return out


def overlaps(all_runs: dict[str, list[Run]]) -> list[tuple[Run, Run]]:
    """Pairs of runs of one job where the later began before the earlier ended (or the
    earlier never ended although its process was not killed)."""
    found: list[tuple[Run, Run]] = []
    for job_runs in all_runs.values():
        for earlier, later in itertools.pairwise(job_runs):
            if earlier.end is None or later.start < earlier.end:
                found.append((earlier, later))
    return found


@dataclass(frozen=True, slots=True)
class StormFigures:
    """What one storm measured."""

    backend: str
    seed: int
    kills: int
    workers: int
    jobs: int
    lost: int
    duplicates: int
    bound: int
    running_at_kills: int
    recovered: int
    duration: float
    drain: float

    def line(self) -> str:
        """One line for the run's output."""
        return (
            f"kill storm [{self.backend}] seed={self.seed}: kills={self.kills} "
            f"workers started={self.workers} jobs={self.jobs} lost={self.lost} "
            f"duplicates={self.duplicates} (bound {self.bound}) "
            f"running at kills={self.running_at_kills} recovered={self.recovered} "
            f"duration={self.duration:.1f}s (drain {self.drain:.1f}s)"
        )
