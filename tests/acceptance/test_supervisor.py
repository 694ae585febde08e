"""``conveyor run``: pools of real worker processes under the supervisor (reliability A9)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator

import psutil
import pytest

from .harness import Cluster, wait_for
from .supervised import Supervised, gone

pytestmark = pytest.mark.slow

#: Starts a supervisor: ``start("single", env={...})``.
Start = Callable[..., Supervised]

TWO = {"JOBS_WORKER_PROCESSES": "2", "JOBS_WORKER_CONCURRENCY": "4"}


@pytest.fixture
def start(cluster: Cluster) -> Iterator[Callable[..., Supervised]]:
    """Start supervisors on the cluster; each is torn down with its workers."""
    started: list[Supervised] = []

    def make(*words: str, env: dict[str, str] | None = None) -> Supervised:
        sup = Supervised(cluster, *words, env=env)
        started.append(sup)
        return sup

    try:
        yield make
    finally:
        for sup in started:
            sup.close()


def test_a_pool_of_two_drains_and_answers_status_and_stop(cluster: Cluster, start: Start) -> None:
    # Given 200 jobs and a supervisor running one pool of 2 processes
    ids = cluster.enqueue_work(200, seconds=0.02)
    sup = start("single", env=TWO)
    pids = sup.wait_workers(2)

    # Then both processes share the work and every job runs exactly once
    ledger = cluster.wait_ended(ids, timeout=60)
    cluster.check(ids).assert_exactly_once()
    assert set(ledger.by_pid("end")) <= set(pids)
    # and the registry shows them in their pool
    assert {w.pool for w in cluster.workers()} == {"jobs"}

    # When another shell asks for the status
    status = sup.control("status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["running"] is True and doc["pools"][0]["name"] == "jobs"
    assert sorted(w["pid"] for w in doc["pools"][0]["workers"]) == sorted(pids)

    # When another shell stops it, the supervisor and its workers exit
    stop = sup.control("stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert sup.wait(10) == 0, sup.output_tail()
    assert all(gone(p) for p in sup.seen.values())
    after = sup.control("status")
    assert after.returncode == 1 and "no supervisor" in after.stdout


def test_a_killed_worker_is_replaced(cluster: Cluster, start: Start) -> None:
    # Given a pool of 2 processes
    sup = start("jobs", env=TWO)
    first = sup.wait_workers(2)

    # When one worker is SIGKILLed
    victim = sup.seen[first[0]]
    victim.kill()

    # Then its slot gets a new process and the other keeps running
    def replaced() -> list[int] | None:
        state = sup.state()
        pids = sup.pids(state) if state else []
        return pids if len(pids) == 2 and first[0] not in pids else None

    now = wait_for(replaced, timeout=20, what="a replacement worker", detail=sup.output_tail)
    assert first[1] in now
    state = sup.state()
    assert state is not None
    slot = state["pools"][0]["workers"][0]
    assert slot["restarts"] == 1 and slot["last_exit"] == "killed by SIGKILL"
    # and the new worker does work
    ids = cluster.enqueue_work(20)
    cluster.wait_ended(ids, timeout=30)
    cluster.check(ids).assert_exactly_once()


def test_a_worker_that_reaches_max_jobs_is_replaced(cluster: Cluster, start: Start) -> None:
    # Given one process that recycles itself every 5 jobs
    ids = cluster.enqueue_work(20)
    sup = start("single", env={"JOBS_WORKER_MAX_JOBS": "5", "JOBS_WORKER_CONCURRENCY": "1"})

    # Then 4 successive processes run the 20 jobs, exactly once each
    ledger = cluster.wait_ended(ids, timeout=60)
    cluster.check(ids).assert_exactly_once()
    assert len(ledger.by_pid("end")) >= 4
    assert max(ledger.by_pid("end").values()) <= 5
    assert "exited cleanly" in sup.output()


def test_sighup_restarts_one_by_one_without_cutting_jobs(cluster: Cluster, start: Start) -> None:
    # Given 2 processes running 3-second jobs
    ids = cluster.enqueue_work(12, seconds=3.0)
    sup = start("single", env={**TWO, "JOBS_WORKER_CONCURRENCY": "3"})
    old = sup.wait_workers(2)
    cluster.wait_started(4, timeout=30)

    # When the supervisor gets SIGHUP
    sup.send(signal.SIGHUP)

    # Then both slots end up with new processes, one at a time,
    def rolled() -> bool:
        state = sup.state()
        return bool(state) and not state["rolling"] and not set(sup.pids(state)) & set(old)

    wait_for(rolled, timeout=60, what="a finished rolling restart", detail=sup.output_tail)
    # and no job was cut off: every job ran once, start to end, nothing lost.
    cluster.wait_ended(ids, timeout=60)
    verdict = cluster.check(ids)
    verdict.assert_exactly_once()
    assert not verdict.restarted, verdict.summary()
    assert sup.output().count("rolling restart: stopping pid") == 2


def test_sigterm_stops_every_worker_gracefully(cluster: Cluster, start: Start) -> None:
    # Given 2 processes in the middle of 2-second jobs
    ids = cluster.enqueue_work(6, seconds=2.0)
    sup = start("single", env={**TWO, "JOBS_WORKER_CONCURRENCY": "2"})
    sup.wait_workers(2)
    started = cluster.wait_started(4, timeout=30).job_ids("start")

    # When the supervisor gets SIGTERM
    sup.send(signal.SIGTERM)

    # Then it exits 0 after its workers finished what they were running
    assert sup.wait(30) == 0, sup.output_tail()
    assert all(gone(p) for p in sup.seen.values())
    assert started <= cluster.ledger().job_ids("end")
    assert cluster.workers() == []
    # and nothing was lost: the rest is still there for the next run
    later = cluster.start_worker("--burst")
    assert later.wait(60) == 0, later.output_tail()
    cluster.check(ids).assert_exactly_once()


def test_a_killed_supervisor_leaves_no_worker_behind(cluster: Cluster, start: Start) -> None:
    # Given a supervisor with 3 workers in two pools
    sup = start("jobs", "mail", env={**TWO, "MAIL_WORKER_PROCESSES": "1"})
    pids = sup.wait_workers(3)
    workers: list[psutil.Process] = [sup.seen[p] for p in pids]

    # When the supervisor is SIGKILLed
    sup.send(signal.SIGKILL)
    sup.wait(5)

    # Then every worker exits on its own within 5 seconds
    wait_for(
        lambda: all(gone(w) for w in workers),
        timeout=5,
        what="the orphaned workers to exit",
        detail=sup.output_tail,
    )
