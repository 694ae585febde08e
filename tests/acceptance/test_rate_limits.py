"""Rate and concurrency limits hold across three real worker processes, on every store.

The rate test is the issue's: a local HTTP API on 127.0.0.1 (`rate_api.py`, its own
process) answers 429 whenever it sees more than 45 requests in one second; 1,000 jobs
with ``rate_limit="45/s"`` on three worker processes all succeed, the API never sees more
than 45 requests in any one-second window and never has to answer 429.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor import State

from .harness import Cluster, WorkerProcess, wait_for
from .limits_app import ACCOUNT, API_ENV, CALL, RATE, build_app

JOBS = 1_000
LIMITS_APP = "limits_app:app"


@dataclass
class Api:
    """The `rate_api.py` process: its URL, and what it saw."""

    proc: subprocess.Popen[bytes]
    url: str

    def stats(self) -> tuple[list[float], int]:
        """Every request's arrival time, and how many were answered 429."""
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            data = json.loads(response.read())
        return [float(t) for t in data["arrivals"]], int(data["rejected"])


@pytest.fixture
def api() -> Iterator[Api]:
    """A rate-limited API at 45 requests per second, in its own process on 127.0.0.1."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("rate_api.py")), "--rate", str(RATE)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        proc.stdout.close()
        yield Api(proc, f"http://127.0.0.1:{port}")
    finally:
        proc.kill()
        proc.wait(10)


def start_three(
    cluster: Cluster, concurrency: str, env: dict[str, str] | None = None
) -> list[WorkerProcess]:
    """Three workers of the limits app, once all three are in the registry."""
    workers = [
        cluster.start_worker("--concurrency", concurrency, env=env, app=LIMITS_APP)
        for _ in range(3)
    ]
    wait_for(
        lambda: len(cluster.workers()) >= 3,
        timeout=30,
        what="three workers to register",
        detail=cluster.outputs,
    )
    return workers


def busiest_second(times: list[float]) -> int:
    """The most arrivals inside any one-second window."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_three_workers_keep_45_per_second_and_never_see_a_429(cluster: Cluster, api: Api) -> None:
    # Given three worker processes running the rate-limited task
    workers = start_three(cluster, "4", {API_ENV: api.url})

    # When 1,000 jobs are enqueued at once
    app = build_app(cluster.url)
    try:
        task = app.get_task(CALL)
        ids = [h.id for h in task.enqueue_many([(n,) for n in range(JOBS)])]
    finally:
        app.close()

    # Then every job succeeds, each on its first attempt,
    wait_for(
        lambda: cluster.states(ids)[State.SUCCEEDED] == JOBS,
        timeout=180,
        what="all 1,000 jobs to succeed",
        detail=lambda: f"{cluster.states(ids)}\n{cluster.outputs()}",
    )
    cluster.check(ids).assert_exactly_once()
    assert {cluster.job(i).attempts for i in ids[:50]} == {1}
    # the API never saw more than 45 requests in a second and never had to say 429,
    arrivals, rejected = api.stats()
    seen = f"{len(arrivals)} requests, {rejected} answered 429, "
    seen += f"busiest second {busiest_second(arrivals)}"
    assert (len(arrivals), rejected) == (JOBS, 0), seen
    assert busiest_second(arrivals) <= RATE, seen
    # and all three workers did their share.
    assert len(cluster.ledger().by_pid("end")) == 3
    for proc in workers:
        proc.send(signal.SIGTERM)
    for proc in workers:
        assert proc.wait(20) == 0, proc.output_tail()


def overlaps(events: list[dict[str, Any]], dead_pids: set[int]) -> list[str]:
    """Per account, runs whose [start, end] intervals overlap (runs of ``dead_pids`` that
    never ended are left out: their worker was killed)."""
    runs: dict[tuple[str, int], dict[str, float]] = {}
    for e in events:
        runs.setdefault((e["job_id"], e["pid"]), {"account": e["account"]})[e["event"]] = e["t"]
    by_account: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (_, pid), run in runs.items():
        if "end" not in run and pid in dead_pids:
            continue
        by_account[str(run["account"])].append((run["start"], run.get("end", float("inf"))))
    bad = []
    for account, spans in by_account.items():
        spans.sort()
        latest_end = float("-inf")
        for start, end in spans:
            if start < latest_end:
                bad.append(f"{account}: a run started at {start} before one ended at {latest_end}")
            latest_end = max(latest_end, end)
    return bad


@pytest.mark.timeout(180)
def test_one_job_per_account_across_processes_and_a_dead_workers_slot_comes_back(
    cluster: Cluster,
) -> None:
    # Given three workers and a long job holding account "a"'s only slot
    workers = start_three(cluster, "4")
    app = build_app(cluster.url)
    try:
        task = app.get_task(ACCOUNT)
        [long_id] = [h.id for h in task.enqueue_many([("a", 0, 3.0)])]
        ledger = cluster.wait_started(1, timeout=30)
        holder_pid = ledger.events("start")[0]["pid"]

        # When more jobs for "a" and for other accounts arrive, and the holder is killed
        ids = [long_id] + [
            h.id
            for h in task.enqueue_many(
                [(acct, n, 0.05) for n in range(1, 6) for acct in ("a", "b", "c")]
            )
        ]
        [holder] = [w for w in workers if w.pid == holder_pid]
        holder.send(signal.SIGKILL)
        holder.wait(10)
    finally:
        app.close()

    # Then every job still completes (the dead worker's slot and lease expire),
    wait_for(
        lambda: cluster.states(ids)[State.SUCCEEDED] == len(ids),
        timeout=120,
        what="every account job to succeed",
        detail=lambda: f"{cluster.states(ids)}\n{cluster.outputs()}",
    )
    # and no two runs of one account ever overlapped.
    events = cluster.ledger().events("start") + cluster.ledger().events("end")
    assert overlaps(events, {holder_pid}) == []
