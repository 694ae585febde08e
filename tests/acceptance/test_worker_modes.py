"""Worker modes with real processes on every store: a job-specialized worker beside a
catch-all one (issue 5 "Done when")."""

from __future__ import annotations

import signal

import pytest

from .harness import Cluster, wait_for
from .ledger_app import MAIL, WORK

pytestmark = pytest.mark.slow


def test_job_specialized_worker_takes_only_its_type_while_catch_all_drains_the_rest(
    cluster: Cluster,
) -> None:
    # Given 60 `ledger.work` and 60 `ledger.mail` jobs
    work = cluster.enqueue_work(60, seconds=0.02)
    mail = cluster.enqueue_work(60, seconds=0.1, task_name=MAIL)
    # and a job-specialized worker for `ledger.mail`, running before anything else
    special = cluster.start_worker(
        "--mode", "job-specialized", "--job-types", MAIL, "--concurrency", "2"
    )
    wait_for(
        lambda: special.pid in {w.pid for w in cluster.workers()},
        timeout=20,
        what="the specialized worker to register",
        detail=special.output_tail,
    )
    cluster.wait_started(1, timeout=20)

    # When a catch-all (default mode) worker joins it
    catch_all = cluster.start_worker("--mode", "default", "--concurrency", "2")

    # Then every job runs exactly once,
    ledger = cluster.wait_ended(work + mail, timeout=60)
    cluster.check(work + mail).assert_exactly_once()
    # the specialized worker ran only `ledger.mail` jobs (and some of them),
    tasks_by_pid: dict[int, set[str]] = {}
    for r in ledger.records:
        tasks_by_pid.setdefault(int(r["pid"]), set()).add(r["task"])
    assert tasks_by_pid.get(special.pid) == {MAIL}, tasks_by_pid
    assert set(tasks_by_pid) <= {special.pid, catch_all.pid}, tasks_by_pid
    # and the catch-all worker drained every other job
    work_pids = {int(r["pid"]) for r in ledger.records if r["task"] == WORK}
    assert work_pids == {catch_all.pid}, tasks_by_pid
    assert "worker mode job-specialized" in special.output()
    assert "worker mode default" in catch_all.output()

    # And both stop cleanly on SIGTERM
    for proc in (special, catch_all):
        proc.send(signal.SIGTERM)
    assert [special.wait(20), catch_all.wait(20)] == [0, 0], cluster.outputs()
