"""SIGKILL storms: under load, a random busy worker is killed 50 times and replaced each time,
on SQLite, Redis and PostgreSQL; then the fleet drains and the ledger is checked.

Passing means: nothing lost (every acknowledged job ended, and the store shows every job
succeeded: none dead, none stuck), nothing unexpected ran, duplicates stay within what the
kills can explain (at most the concurrency of each killed worker), and no job ever ran in two
places at once. The figures of each storm are printed in the terminal summary.

The seed (``CHAOS_SEED`` to replay one) picks the victims, the pauses and the job lengths; the
rest is the machine's timing.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from tests.acceptance.harness import Cluster, backend_call

from .support import (
    KillStorm,
    Producer,
    StormFigures,
    overlaps,
    report,
    runs,
    wait_all_succeeded,
)

KILLS = 50
WORKERS = 3
CONCURRENCY = 4
BACKLOG = 200
#: Job lengths (s): long enough for kills to land mid-job, short enough to drain quickly.
DURATIONS = (0.0, 0.05, 0.2, 0.5)
#: Hard deadlines inside the test (s), well below its pytest timeout.
STORM_BUDGET = 120.0
DRAIN_BUDGET = 60.0
#: The poison-pill limit is not under test here: a job unlucky enough to be running at a few
#: kills in a row must come back, not be dead-lettered as a pill.
ENV = {"MAX_RECOVERIES": "1000"}


@pytest.mark.slow
@pytest.mark.timeout(STORM_BUDGET + DRAIN_BUDGET + 60)
@pytest.mark.parametrize("backend", ["sqlite", "redis", "pg"])
def test_kill_storm_loses_no_job(request: pytest.FixtureRequest, backend: str) -> None:
    cluster: Cluster = request.getfixturevalue(f"{backend}_cluster")
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(2**31))
    print(f"kill storm [{backend}] seed={seed} (CHAOS_SEED={seed} replays the choices)")
    rng = random.Random(seed)
    storm = KillStorm(cluster, rng, size=WORKERS, concurrency=CONCURRENCY, env=ENV)
    producer = Producer(cluster, batch=2, pause=0.1, durations=DURATIONS, seed=seed)
    begin = time.monotonic()
    try:
        # Given a backlog, three workers and a producer that keeps enqueueing
        producer.enqueue(BACKLOG)
        storm.start()
        producer.start()

        # When a random worker in the middle of a job is SIGKILLed, 50 times, each replaced
        deadline = begin + STORM_BUDGET
        while len(storm.kills) < KILLS:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(storm.kills)} kills in {STORM_BUDGET:g}s (seed {seed})"
            storm.kill_one(timeout=left)

        # and then the producer stops and the fleet drains the queue
        producer.stop()
        drain_begin = time.monotonic()
        ids = producer.acknowledged
        cluster.wait_ended(ids, timeout=DRAIN_BUDGET)
        storm.stop(timeout=30)
        duration = time.monotonic() - begin
        drain = time.monotonic() - drain_begin

        # Then the ledger and the store agree that nothing was lost,
        ledger = cluster.ledger()
        verdict = cluster.check(ids)
        killed = {k.pid for k in storm.kills}
        all_runs = runs(ledger, storm.kills)
        cut_short = sum(r.cut for job_runs in all_runs.values() for r in job_runs)
        counters = backend_call(cluster.url, lambda b: b.admin.counters())
        duplicates = sum(verdict.duplicated.values())
        figures = StormFigures(
            backend=backend,
            seed=seed,
            kills=len(storm.kills),
            workers=len(cluster.processes),
            jobs=len(ids),
            lost=len(verdict.lost),
            duplicates=duplicates,
            bound=len(storm.kills) * CONCURRENCY,
            running_at_kills=cut_short,
            recovered=counters.get("recovered", 0),
            duration=duration,
            drain=drain,
        )
        report(figures.line())
        assert not producer.errors, producer.errors[:5]
        assert verdict.valid, verdict.summary()
        wait_all_succeeded(cluster, ids)

        # duplicates stay within what the kills explain: each one is a job that ended in a
        # killed worker before its result was stored,
        assert duplicates <= figures.bound, verdict.summary()
        for job_id in verdict.duplicated:
            ended_by = [int(e["pid"]) for e in ledger.events("end") if e["job_id"] == job_id]
            assert set(ended_by[:-1]) <= killed, (job_id, ended_by, sorted(killed))

        # every job cut short by a kill came back through an expired lease,
        assert figures.recovered >= cut_short, (counters, cut_short)

        # and no job ever ran in two places at once.
        assert not overlaps(all_runs), overlaps(all_runs)[:5]
    finally:
        producer.halt.set()
