"""``conveyor scheduler`` processes on every store (issue 5 "Done when").

* Three schedulers at once enqueue each tick of a one-second entry exactly once.
* After every scheduler was stopped, a new one follows each entry's missed-tick policy.

How "missed" is decided (`conveyor.schedule.due_ticks`): a tick is on time while it is at
most ``window = lease_ttl + interval`` seconds old (here ``SCHEDULER_INTERVAL=0.1``, so a
lease of 1 s and a window of 1.1 s). The missed-policy test makes the restarted scheduler's
first leading tick fall well inside the late part of a tick period: the test itself holds
the leader lease while the new scheduler starts, and releases it at a chosen phase of the
period, so process start-up time cannot move that first tick.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from itertools import pairwise

import pytest

from conveyor.backends import create_backend
from conveyor.schedule import IntervalSchedule
from conveyor.scheduler import LEADER_LEASE

from .cron_app import EVERY
from .harness import Cluster, WorkerProcess, wait_for

pytestmark = pytest.mark.slow

INTERVAL = 0.1
#: `Scheduler.window` for ``INTERVAL``: the default lease (3 intervals, at least 1 s) + 1.
WINDOW = max(3 * INTERVAL, 1.0) + INTERVAL
#: Where in an ``EVERY``-second period the test lets the restarted scheduler lead: halfway
#: between the end of the on-time window and the next tick (about 0.95 s of slack each way).
RELEASE_PHASE = (WINDOW + EVERY) / 2
GATE_OWNER = "acceptance-test-gate"


def stop_all(procs: list[WorkerProcess], timeout: float = 15) -> list[int]:
    """SIGTERM each process and return their exit codes."""
    for p in procs:
        p.send(signal.SIGTERM)
    return [p.wait(timeout) for p in procs]


def test_three_schedulers_enqueue_each_tick_once(cluster: Cluster) -> None:
    # Given three `conveyor scheduler` processes on one store, ticking every 0.2 s
    env = {"SCHEDULER_INTERVAL": "0.2"}
    procs = [cluster.start_scheduler("cron_app:ticking", env=env) for _ in range(3)]

    # When they run side by side for at least five one-second ticks
    wait_for(
        lambda: len(cluster.ticks("heartbeat")) >= 5,
        timeout=25,
        interval=0.2,
        what="5 heartbeat ticks",
        detail=cluster.outputs,
    )
    assert all(p.alive() for p in procs), cluster.outputs()
    codes = stop_all(procs)

    # Then they stopped cleanly, one led, and each second became exactly one job
    assert codes == [0, 0, 0], cluster.outputs()
    ticks = cluster.ticks("heartbeat")
    assert len(ticks) == len(set(ticks)), ticks  # never twice
    assert all(b - a == 1 for a, b in pairwise(ticks)), ticks  # never skipped
    outputs = [p.output() for p in procs]
    assert sum("is now the leader" in o for o in outputs) >= 1, cluster.outputs()

    # And `conveyor schedule list --json` shows both entries with their last and next runs
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor",
            "schedule",
            "list",
            "--app",
            "cron_app:ticking",
            "--json",
        ],
        env=cluster.env,
        cwd=cluster.dir,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"heartbeat", "prune"}
    beat, prune = rows["heartbeat"], rows["prune"]
    assert (beat["schedule"], beat["timezone"], beat["missed"]) == ("every 1s", "UTC", "run_each")
    assert beat["last_run_at"] == pytest.approx(max(ticks))
    assert (prune["schedule"], prune["timezone"], prune["missed"]) == (
        "*/5 * * * *",
        "Europe/Paris",
        "skip",
    )
    assert prune["next_run_at"] > time.time() - 1 and prune["next_run"].endswith("Z")


async def _hold_lease(url: str) -> None:
    backend = create_backend(url)
    await backend.open()
    try:
        assert await backend.scheduling.acquire_lease(LEADER_LEASE, GATE_OWNER, 120)
    finally:
        await backend.close()


async def _release_at(url: str, first: float) -> float:
    """Release the leader lease `RELEASE_PHASE` s into the first tick period that starts
    at or after the tick ``first`` and still has that moment ahead; return when released."""
    start = max(IntervalSchedule(EVERY).at_or_before(time.time()), first)
    if time.time() > start + RELEASE_PHASE - 0.05:
        start += EVERY
    backend = create_backend(url)
    await backend.open()  # connected before the moment, so releasing is one round trip
    try:
        await asyncio.sleep(max(0.0, start + RELEASE_PHASE - time.time()))
        await backend.scheduling.release_lease(LEADER_LEASE, GATE_OWNER)
        return time.time()
    finally:
        await backend.close()


def test_missed_ticks_follow_each_policy_after_every_scheduler_was_down(
    cluster: Cluster,
) -> None:
    env = {"SCHEDULER_INTERVAL": str(INTERVAL)}
    names = ("once", "skip", "each")
    schedule = IntervalSchedule(EVERY)

    # Given a scheduler that fired every entry for two ticks, then was stopped (SIGTERM)
    first = cluster.start_scheduler("cron_app:missed", env=env)
    wait_for(
        lambda: all(len(cluster.ticks(n)) >= 2 for n in names),
        timeout=15,
        interval=0.1,
        what="2 ticks of each entry",
        detail=cluster.outputs,
    )
    assert stop_all([first]) == [0], first.output_tail()
    before = {n: cluster.ticks(n) for n in names}
    last = {n: max(t) for n, t in before.items()}
    for n, ticks in before.items():
        assert all(b - a == EVERY for a, b in pairwise(ticks)), (n, ticks)

    # When no scheduler runs for more than three ticks
    newest = max(last.values())
    wait_for(
        lambda: time.time() > newest + 3 * EVERY,
        timeout=3 * EVERY + 2,
        interval=0.1,
        what="three ticks to pass",
    )
    # and then a new scheduler starts, and first leads at RELEASE_PHASE s into a period:
    # past the on-time window of that period's tick, well before the next tick
    asyncio.run(_hold_lease(cluster.url))
    second = cluster.start_scheduler("cron_app:missed", env=env)
    cluster.wait_output(second, "started: interval=", timeout=15)
    released = asyncio.run(_release_at(cluster.url, newest + 3 * EVERY))
    late = schedule.at_or_before(released)
    assert WINDOW + 0.2 < released - late < EVERY - 0.5, "the test's own timing slipped"
    # and runs until the first tick after it (on time for every policy)
    wait_for(
        lambda: all(late + EVERY in cluster.ticks(n) for n in names),
        timeout=EVERY + 5,
        interval=0.1,
        what="the first on-time tick after the restart",
        detail=cluster.outputs,
    )
    assert stop_all([second]) == [0], second.output_tail()
    assert "is now the leader" in second.output(), second.output_tail()

    # Then the ticks enqueued for the gap follow each entry's policy:
    after = {n: [t for t in cluster.ticks(n) if t > last[n]] for n in names}
    for n, ticks in after.items():
        assert len(ticks) == len(set(ticks)), (n, ticks)  # never twice
    gap = {n: [t for t in ticks if t < late + EVERY] for n, ticks in after.items()}
    missed_ticks: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        t = last[n] + EVERY
        while t <= late:
            missed_ticks[n].append(t)
            t += EVERY
        assert len(missed_ticks[n]) >= 3, (n, missed_ticks[n])
    # run_once: exactly one catch-up job, for the latest missed tick
    assert gap["once"] == [late], gap
    # skip: none
    assert gap["skip"] == [], gap
    # run_each: one per missed tick, oldest first
    assert gap["each"] == missed_ticks["each"], gap
    # and every entry is back on schedule
    assert all(late + EVERY in ticks for ticks in after.values()), after
