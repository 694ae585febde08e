"""A job that kills every worker that runs it is dead-lettered; the other jobs still flow."""

from __future__ import annotations

import signal

import pytest

from conveyor import State

from .harness import Cluster, WorkerProcess, wait_for
from .ledger_app import CRASH

MAX_RECOVERIES = 2
MAX_WORKERS = 6


@pytest.mark.slow
def test_poison_pill_is_dead_lettered_as_worker_lost(cluster: Cluster) -> None:
    # Given 10 jobs, a job that calls os._exit(1) whenever it runs, then 20 more jobs
    before = cluster.enqueue_work(10, seconds=0.02)
    poison = cluster.app.get_task(CRASH).enqueue().id
    after = cluster.enqueue_work(20, seconds=0.02, start=10)
    work = before + after
    work_ids = set(work)

    def settled() -> bool:
        return cluster.job(poison).state is State.DEAD and (
            work_ids <= cluster.ledger().job_ids("end")
        )

    # When workers run one job at a time, and a supervisor-like loop restarts each one
    # that dies (at most MAX_WORKERS starts)
    env = {"MAX_RECOVERIES": str(MAX_RECOVERIES)}
    procs: list[WorkerProcess] = []
    while not settled():
        if not procs or not procs[-1].alive():
            assert len(procs) < MAX_WORKERS, f"crash loop never settled\n{cluster.outputs()}"
            procs.append(cluster.start_worker("--concurrency", "1", env=env))
        current = procs[-1]
        wait_for(
            lambda proc=current: settled() or not proc.alive(),
            timeout=30,
            interval=0.1,
            what="the poison pill to be dead-lettered or the worker to die",
            detail=cluster.outputs,
        )

    # Then the pill killed exactly MAX_RECOVERIES workers, each with exit code 1,
    survivor = procs[-1]
    assert [p.wait(5) for p in procs[:-1]] == [1] * MAX_RECOVERIES, cluster.outputs()
    assert survivor.alive()
    ledger = cluster.ledger()
    assert ledger.by_job("start")[poison] == MAX_RECOVERIES
    # it is dead with the worker_lost reason,
    record = cluster.job(poison)
    assert record.state is State.DEAD
    assert record.recoveries == MAX_RECOVERIES
    assert record.last_error is not None and record.last_error.startswith("worker_lost"), record
    # and every other job ran to its end exactly once, across the restarts.
    cluster.check([*work, poison], never_finish=[poison]).assert_exactly_once()
    assert cluster.states(work) == {State.SUCCEEDED: len(work)}
    assert len(set(ledger.by_pid("end"))) >= 2, "the other jobs did not flow between crashes"

    survivor.send(signal.SIGTERM)
    assert survivor.wait(15) == 0, survivor.output_tail()
