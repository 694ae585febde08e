"""SQLite claims: waiting for work across handles and processes, cancellation, group commit.

A waiting claim (``claim(..., wait=)``) sleeps until ``PRAGMA data_version`` shows another
connection committed (or this handle wrote), then claims; a claim cancelled at any moment
leaves no job leased to nobody. The hot writes that queue up share one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conveyor.backends.sqlite import SqliteBackend
from conveyor.backends.sqlite.store import Store
from conveyor.errors import BackendUnavailable, SerializationError
from conveyor.job import Failure, JobQuery, Lease, Routing, State

from .sqlite_support import job, opened, url_for

#: A waiting claim's wait: far longer than any test may take, so waking early is the point.
LONG = 60.0
#: How soon a waiting claim must return once work it can take was committed.
PROMPT = 10.0

#: Run in another process: enqueue one job into the file at argv[1], print its id.
ENQUEUE = """
import sys
from conveyor.backends.sqlite import SqliteBackend
from conveyor.job import NewJob, Priority

backend = SqliteBackend(sys.argv[1])
new = NewJob(task="t", queue="q", priority=Priority.NORMAL, payload=b"[]", max_retries=0,
             timeout=5.0)
[result] = backend.enqueue_sync([new])
print(result.id)
"""


# -- waiting for work ---------------------------------------------------------------------


async def test_a_waiting_claim_wakes_on_an_enqueue_from_another_process(tmp_path: Path) -> None:
    # Given a claim waiting for work on an empty file
    backend = await opened(tmp_path / "c.db")
    claim = asyncio.create_task(backend.claim("w", Routing(), 1, 30.0, wait=LONG))

    # When another process enqueues a job into the same file
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ENQUEUE, url_for(tmp_path / "c.db"), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60.0)
    assert process.returncode == 0

    # Then the waiting claim takes that job soon after, long before its wait is up
    [claimed] = await asyncio.wait_for(claim, PROMPT)
    assert claimed.id == out.decode().strip() and claimed.state is State.RUNNING
    await backend.close()


async def test_a_waiting_claim_wakes_on_an_enqueue_from_another_handle(tmp_path: Path) -> None:
    # Given a claim waiting for work on one handle, and a second handle on the same file
    backend, other = await opened(tmp_path / "c.db"), await opened(tmp_path / "c.db")
    claim = asyncio.create_task(backend.claim("w", Routing(queues=("mail",)), 1, 30.0, wait=LONG))

    # When the other handle enqueues a job for another queue, then one for the claim's
    await other.enqueue([job(queue="other")])
    [wanted] = await other.enqueue([job(queue="mail")])

    # Then the claim takes the job it routes to, long before its wait is up
    [claimed] = await asyncio.wait_for(claim, PROMPT)
    assert claimed.id == wanted.id
    await other.close()
    await backend.close()


async def test_defer_and_resume_wake_a_waiting_claim_on_the_same_handle(tmp_path: Path) -> None:
    # Given a claim waiting on a handle whose only ready job sits in a paused queue
    backend = await opened(tmp_path / "c.db")
    await backend.admin.pause_queue("q")
    [paused] = await backend.enqueue([job()])
    claim = asyncio.create_task(backend.claim("w", Routing(), 1, 30.0, wait=LONG))
    await asyncio.sleep(0.1)
    assert not claim.done()

    # When the same handle resumes the queue, the claim wakes and takes the job
    await backend.admin.resume_queue("q")
    [running] = await asyncio.wait_for(claim, PROMPT)
    assert running.id == paused.id

    # And a job deferred by the same handle wakes a waiting claim too
    claim = asyncio.create_task(backend.claim("w", Routing(), 1, 30.0, wait=LONG))
    await asyncio.sleep(0.1)
    assert not claim.done()
    assert await backend.defer(Lease(running.id, running.lease_token or ""), 0.0)
    [again] = await asyncio.wait_for(claim, PROMPT)
    assert again.id == paused.id
    await backend.close()


# -- cancellation -------------------------------------------------------------------------


async def test_a_cancelled_claim_gives_its_jobs_back(tmp_path: Path) -> None:
    # Given a claim whose caller is cancelled while the claim runs on the backend's thread
    backend = await opened(tmp_path / "c.db")
    [result] = await backend.enqueue([job()])
    claim = asyncio.create_task(backend.claim("w", Routing(), 1, 600.0))
    await asyncio.sleep(0)  # let it hand the claim to the thread
    claim.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await claim

    # Then the job is ready again at once (not after a 600 s lease), its attempt returned
    deadline = time.monotonic() + 5
    while (found := await backend.get(result.id)) is not None and found.state is not State.READY:
        assert time.monotonic() < deadline, f"job stuck in {found.state}"
        await asyncio.sleep(0.01)
    assert found is not None and found.attempts == 0
    assert [j.id for j in await backend.claim("w", Routing(), 1, 60.0)] == [result.id]
    await backend.close()


async def test_a_claim_cancelled_while_waiting_leaves_no_job_running(tmp_path: Path) -> None:
    # Given a claim waiting for work, cancelled before anything arrives
    backend, other = await opened(tmp_path / "c.db"), await opened(tmp_path / "c.db")
    claim = asyncio.create_task(backend.claim("w", Routing(), 1, 600.0, wait=LONG))
    await asyncio.sleep(0.1)
    claim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claim

    # When a job arrives afterwards, it stays ready for the next claim
    [result] = await other.enqueue([job()])
    await asyncio.sleep(0.2)  # a claim left behind would have taken it by now
    found = await backend.get(result.id)
    assert found is not None and (found.state, found.attempts) == (State.READY, 0)

    # And claims cancelled at every moment around an enqueue (asleep, waking, or with
    # their claim in flight) each either return their job or leave it ready
    returned: list[str] = []
    for round_ in range(30):
        routing = Routing(queues=(f"r{round_}",))
        claim = asyncio.create_task(backend.claim("w", routing, 1, 600.0, wait=LONG))
        await asyncio.sleep(0.01)
        await other.enqueue([job(queue=f"r{round_}")])
        await asyncio.sleep(0.002 * round_)  # cancel at a different moment each round
        claim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            returned += [j.id for j in await claim]
    running = await backend.admin.query(JobQuery(states=(State.RUNNING,), limit=100))
    assert sorted(j.id for j in running) == sorted(returned)
    ready = await backend.admin.query(JobQuery(states=(State.READY,), limit=100))
    assert len(ready) == 31 - len(returned) and all(j.attempts == 0 for j in ready)
    await other.close()
    await backend.close()


# -- group commit -------------------------------------------------------------------------


def count_transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of writes each shared transaction commits."""
    sizes: list[int] = []
    together = Store.together

    def spy(self: Store, writes: Sequence[Callable[[], object]]) -> list[object]:
        sizes.append(len(writes))
        return together(self, writes)

    monkeypatch.setattr(Store, "together", spy)
    return sizes


async def test_acks_that_queue_up_share_one_transaction_and_stay_fenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 20 running jobs, and a stale token for one of them
    backend = await opened(tmp_path / "c.db")
    await backend.enqueue([job() for _ in range(20)])
    claimed = await backend.claim("w", Routing(), 20, 60.0)
    leases = [Lease(j.id, j.lease_token or "") for j in claimed]
    stale = Lease(leases[0].job_id, "not-the-token")
    sizes = count_transactions(monkeypatch)

    # When all their acks (and the stale one) are sent at once
    acks = [backend.complete(lease, b"1") for lease in leases[:10]]
    acks += [backend.fail(lease, Failure("boom", retry_in=None)) for lease in leases[10:]]
    results = await asyncio.gather(backend.complete(stale, b"x"), *acks)

    # Then they were committed in fewer transactions than acks, each with its own answer
    assert sum(sizes) >= 2 and len(sizes) < len(results)
    assert results == [False] + [True] * 20
    states = [(await backend.get(lease.job_id)) for lease in leases]
    assert [r.state for r in states if r is not None] == [State.SUCCEEDED] * 10 + [State.DEAD] * 10
    assert all(r is not None and r.result == b"1" for r in states[:10])
    assert (await backend.admin.counters())["fenced"] == 1
    await backend.close()


async def test_an_error_in_a_shared_transaction_reaches_only_its_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given running jobs, and a batch of new jobs one of which SQLite cannot store
    backend = await opened(tmp_path / "c.db")
    await backend.enqueue([job() for _ in range(5)])
    claimed = await backend.claim("w", Routing(), 5, 60.0)
    leases = [Lease(j.id, j.lease_token or "") for j in claimed]
    bad = [job(), job(headers={"when": {1, 2}})]  # a set is not JSON
    sizes = count_transactions(monkeypatch)

    # When the bad enqueue queues up together with the acks
    outcomes = await asyncio.gather(
        *[backend.complete(lease, None) for lease in leases[:2]],
        backend.enqueue(bad),
        *[backend.complete(lease, None) for lease in leases[2:]],
        return_exceptions=True,
    )

    # Then only the enqueue failed (and stored nothing); every ack committed
    assert sizes and max(sizes) > 1
    assert isinstance(outcomes[2], SerializationError)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [True] * 5
    assert await backend.get(bad[0].id) is None
    for lease in leases:
        found = await backend.get(lease.job_id)
        assert found is not None and found.state is State.SUCCEEDED
    await backend.close()


async def test_a_locked_file_fails_each_waiting_write(tmp_path: Path) -> None:
    # Given a file another connection holds the write lock on, and a short busy timeout
    path = tmp_path / "c.db"
    await (await opened(path)).close()
    backend = SqliteBackend(url_for(path, "?busy_timeout=50"))
    await backend.open()
    [first, second] = await backend.enqueue([job(), job()])
    claimed = await backend.claim("w", Routing(), 2, 60.0)
    leases = [Lease(j.id, j.lease_token or "") for j in claimed]
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    # When both jobs are acked at once
    outcomes = await asyncio.gather(
        *[backend.complete(lease, None) for lease in leases], return_exceptions=True
    )

    # Then each caller hears the file is locked, and after the lock is gone they succeed
    assert all(isinstance(o, BackendUnavailable) for o in outcomes), outcomes
    holder.execute("ROLLBACK")
    holder.close()
    assert await asyncio.gather(*[backend.complete(lease, None) for lease in leases]) == [
        True,
        True,
    ]
    assert {first.id, second.id} == {lease.job_id for lease in leases}
    await backend.close()
