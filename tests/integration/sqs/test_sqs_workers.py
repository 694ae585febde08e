"""Real worker processes on the SQS store (moto_server): a drain, and workers SIGKILLed
mid-job and mid-batch. The ledger app and harness are the acceptance tier's
(tests/acceptance): every job appends start and end records to a ledger file, and the
checker compares them with the ids enqueued.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster, wait_for

LEASE = 2.0  # FAST_ENV's LEASE_SECONDS: the visibility timeout a worker asks for
#: For workers that are not meant to lose a lease: on a loaded machine a round trip to
#: moto_server can take a good part of 2 s, and a lease lost that way runs a job twice.
STEADY = {"LEASE_SECONDS": "20"}


@pytest.fixture
def cluster(tmp_path: Path, sqs_url: str) -> Iterator[Cluster]:
    """A ledger in ``tmp_path`` and an SQS store of its own; workers killed after."""
    c = Cluster(tmp_path, sqs_url)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.timeout(120)
def test_two_workers_drain_a_bulk_enqueue_exactly_once(cluster: Cluster) -> None:
    # Given two workers on one SQS store
    first = cluster.start_worker("--concurrency", "10", env=STEADY)
    second = cluster.start_worker("--concurrency", "10", env=STEADY)

    # When 300 jobs are enqueued in bulk
    ids = cluster.enqueue_work(300, batch=100)

    # Then every job runs exactly once, and both workers took a share
    ledger = cluster.wait_ended(ids, timeout=90)
    cluster.check(ids).assert_exactly_once()
    assert set(ledger.by_pid("end")) == {first.pid, second.pid}, ledger.by_pid("end")
    for proc in (first, second):
        proc.send(signal.SIGTERM)
    assert first.wait(20) == 0, first.output_tail()
    assert second.wait(20) == 0, second.output_tail()


@pytest.mark.timeout(120)
def test_sigkill_mid_job_the_message_comes_back_after_its_visibility_timeout(
    cluster: Cluster,
) -> None:
    # Given 6 jobs of 1.5 s, all running in one worker
    ids = cluster.enqueue_work(6, seconds=1.5)
    victim = cluster.start_worker("--concurrency", "6")
    cluster.wait_started(6, timeout=30)

    # When the worker is SIGKILLed in the middle of them, before any ended
    victim.send(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    ledger = cluster.ledger()
    assert ledger.count("end") == 0, "a job ended before the kill; test premise broken"

    # And another worker starts
    rescuer = cluster.start_worker("--concurrency", "6", env=STEADY)

    # Then every job runs to its end exactly once, in the rescuer, as SQS made each message
    # visible again (that it stays hidden until then: test_sqs_store.py)
    ledger = cluster.wait_ended(ids, timeout=60)
    cluster.check(ids).assert_exactly_once()
    assert set(ledger.by_pid("end")) == {rescuer.pid}
    for start in ledger.events("start"):
        if start["pid"] == rescuer.pid:
            assert start["attempt"] == 1, start  # a lost lease gives the attempt back
    second_starts = [e["t"] for e in ledger.events("start") if e["pid"] == rescuer.pid]
    assert len(second_starts) == 6
    rescuer.send(signal.SIGTERM)
    assert rescuer.wait(20) == 0, rescuer.output_tail()


@pytest.mark.timeout(120)
def test_sigkill_mid_batch_loses_nothing(cluster: Cluster) -> None:
    # Given a worker working through 60 short jobs, ten at a time
    ids = cluster.enqueue_work(60, seconds=0.2, batch=60)
    victim = cluster.start_worker("--concurrency", "10")
    wait_for(
        lambda: cluster.ledger().count("end") >= 15,
        timeout=30,
        what="the worker to be part-way through the batch",
        detail=cluster.outputs,
    )

    # When it is SIGKILLed part-way
    victim.send(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    ended_by_victim = cluster.ledger().job_ids("end")
    assert len(ended_by_victim) < len(ids), "the victim finished everything; premise broken"

    # Then a second worker finishes the rest: nothing is lost, nothing unexpected runs, and
    # a job runs twice only when the kill came between its end and its acknowledgement
    rescuer = cluster.start_worker("--concurrency", "10", env=STEADY)
    cluster.wait_ended(ids, timeout=60)
    verdict = cluster.check(ids)
    assert verdict.valid, verdict.summary()
    assert set(verdict.duplicated) <= ended_by_victim, verdict.summary()
    rescuer.send(signal.SIGTERM)
    assert rescuer.wait(20) == 0, rescuer.output_tail()


@pytest.mark.timeout(120)
def test_a_stalled_workers_late_acknowledgement_is_refused(cluster: Cluster) -> None:
    # Given a worker running a 4 s job, frozen (SIGSTOP) right after it started
    [job_id] = cluster.enqueue_work(1, seconds=4.0)
    stalled = cluster.start_worker("--concurrency", "1")
    cluster.wait_started(1, timeout=30)
    stalled.send(signal.SIGSTOP)
    try:
        # When its lease runs out and another worker runs the job to its end
        rescuer = cluster.start_worker("--concurrency", "1", env=STEADY)
        wait_for(
            lambda: cluster.ledger().by_pid("end").get(rescuer.pid),
            timeout=60,
            what="the rescuer to finish the job",
            detail=cluster.outputs,
        )
    finally:
        stalled.send(signal.SIGCONT)

    # Then the stalled worker, woken up, cannot settle the job: its result (or its
    # heartbeat) is refused, and it says so
    wait_for(
        lambda: (
            "lease" in stalled.output()
            and (
                "no longer holds its lease" in stalled.output()
                or "lost its lease" in stalled.output()
            )
        ),
        timeout=30,
        what="the stalled worker to learn it lost the lease",
        detail=stalled.output_tail,
    )
    starts = cluster.ledger().by_job("start")
    assert starts[job_id] == 2
    for proc in (stalled, rescuer):
        proc.send(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.output_tail()
