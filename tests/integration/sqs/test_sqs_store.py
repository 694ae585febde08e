"""The SQS store's own behaviour against moto_server, on SQS's clock (real seconds).

Leases here are one or two seconds: a message comes back when its visibility timeout runs
out, which only real time can do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
import pytest
from tests.contract.support import new_job

from conveyor.backends.base import poison_pill_reason
from conveyor.backends.sqs.codec import encode, new_record
from conveyor.job import Failure, Lease, Priority, Routing, State

from .support import EVERYTHING, Outside, claim_one, eventually, opened


def lease_of(job: object) -> Lease:
    token = getattr(job, "lease_token", None)
    assert token is not None
    return Lease(job.id, token)  # type: ignore[attr-defined]


# -- fencing ----------------------------------------------------------------------------------
async def test_a_late_acknowledgement_after_the_message_came_back_is_refused(sqs_url: str) -> None:
    async with opened(sqs_url) as first, opened(sqs_url) as second:
        # Given worker 1 holds a job on a 1 s lease and stalls past it
        [job_id] = [r.id for r in await first.enqueue([new_job()])]
        stalled = await claim_one(first, lease=1.0, worker="w1")
        # When the message comes back and worker 2 receives it
        fresh = await claim_one(second, lease=30.0, worker="w2")
        assert fresh.id == job_id and fresh.recoveries == 1 and fresh.attempts == 1
        assert fresh.lease_token != stalled.lease_token
        # Then every late call of worker 1 is refused and changes nothing
        late = lease_of(stalled)
        assert await first.extend([late], 30.0) == [False]
        assert await first.complete(late, b"late") is False
        assert await first.fail(late, Failure("late")) is False
        assert await first.release(late) is False
        assert await first.defer(late, 0.0) is False
        # and worker 2's result is the one kept: the job is gone from the queue
        assert await second.complete(lease_of(fresh), None) is True
        assert await second.claim("w3", EVERYTHING, 10, 1.0, wait=1.5) == []


async def test_a_lease_past_its_expiry_is_refused_even_before_anyone_took_it(
    sqs_url: str,
) -> None:
    async with opened(sqs_url) as store:
        await store.enqueue([new_job()])
        job = await claim_one(store, lease=1.0)
        await asyncio.sleep(1.1)

        assert await store.complete(lease_of(job), None) is False
        # The job is not lost: it comes back to be run again
        again = await claim_one(store)
        assert again.id == job.id and again.recoveries == 1


async def test_extend_keeps_the_message_hidden_past_its_first_lease(sqs_url: str) -> None:
    async with opened(sqs_url) as store, opened(sqs_url) as other:
        await store.enqueue([new_job()])
        job = await claim_one(store, lease=2.0)
        for _ in range(3):  # a heartbeat, past the first lease
            await asyncio.sleep(1.0)
            assert await store.extend([lease_of(job)], 3.0) == [True]
            assert await other.claim("w2", EVERYTHING, 1, 30.0) == []

        assert await store.complete(lease_of(job), None) is True


async def test_a_job_that_arrives_during_a_long_poll_gets_its_whole_lease(sqs_url: str) -> None:
    async with opened(sqs_url) as store, opened(sqs_url) as producer:
        routing = Routing(queues=("q",))
        await producer.enqueue([new_job(queue="q")])  # the SQS queue exists: one to poll
        [first] = await store.claim("w", routing, 1, 30.0)
        assert await store.complete(lease_of(first), None)

        # Given a worker waiting 5 s for work on a 2 s lease, and a job sent 3 s into it
        async def send_later() -> None:
            await asyncio.sleep(3.0)
            await producer.enqueue([new_job(queue="q")])

        sending = asyncio.create_task(send_later())
        [job] = await store.claim("w", routing, 1, 2.0, wait=5.0)
        await sending

        # Then its lease was not spent waiting: the worker can still acknowledge it
        assert await store.complete(lease_of(job), None) is True


async def test_a_lease_never_outlasts_sqs_longest_visibility_timeout(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        await store.enqueue([new_job()])
        # Given a lease asked for longer than SQS hides a message (12 hours)
        before = time.time()
        [job] = await store.claim("w", EVERYTHING, 1, 50_000.0)
        # Then it lasts no longer than SQS keeps the message hidden: past 12 hours the
        # store refuses the lease (the message may be with another worker by then)
        assert job.lease_expires_at is not None
        assert job.lease_expires_at <= time.time() + 43_200
        assert store._book.holds(job.id, job.lease_token or "", before + 43_260) is None
        assert await store.complete(lease_of(job), None)


async def test_a_used_or_foreign_lease_is_refused(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        await store.enqueue([new_job(), new_job()])
        [a, b] = await store.claim("w", EVERYTHING, 2, 30.0)
        assert await store.complete(lease_of(a), None)
        assert await store.complete(lease_of(a), None) is False
        assert await store.complete(Lease(b.id, "f" * 32), None) is False
        assert await store.complete(Lease(a.id, b.lease_token or ""), None) is False
        assert await store.extend([lease_of(b), Lease("missing", "x")], 30.0) == [True, False]


# -- settling ---------------------------------------------------------------------------------
async def test_a_failed_job_comes_back_with_its_error_after_its_delay(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        [job_id] = [r.id for r in await store.enqueue([new_job()])]
        job = await claim_one(store)
        assert await store.fail(lease_of(job), Failure("boom", "Traceback: ...", retry_in=3.0))

        # Not before its delay ...
        assert await store.claim("w", EVERYTHING, 1, 30.0) == []
        # ... then again, with its error, the attempt used
        again = await claim_one(store)
        assert (again.id, again.attempts, again.last_error) == (job_id, 2, "boom")
        assert again.traceback == "Traceback: ..." and again.state is State.RUNNING


async def test_a_dead_job_goes_to_the_dead_queue(sqs_url: str) -> None:
    outside = Outside(sqs_url)
    async with opened(sqs_url) as store:
        [job_id] = [r.id for r in await store.enqueue([new_job(task="app.bad")])]
        job = await claim_one(store)

        assert await store.fail(lease_of(job), Failure("ValueError: bad", "Traceback"))

        assert await store.claim("w", EVERYTHING, 1, 30.0) == []
        [body] = outside.take("dead-letters")
        dead = orjson.loads(body)
        assert (dead["id"], dead["task"], dead["state"]) == (job_id, "app.bad", "dead")
        assert (dead["last_error"], dead["traceback"], dead["attempts"]) == (
            "ValueError: bad",
            "Traceback",
            1,
        )
        assert dead["failed_at"] is not None


async def test_a_settle_whose_old_message_cannot_be_deleted_is_made_once(sqs_url: str) -> None:
    outside = Outside(sqs_url)
    async with opened(sqs_url) as store:
        await store.enqueue([new_job(queue="doomed")])
        job = await claim_one(store)
        # Given the job's SQS queue is deleted while it runs, so its message cannot be deleted
        outside.client.delete_queue(QueueUrl=outside.url("doomed"))

        # When it fails for good, Then it is dead once: the failure is made, not retried
        assert await store.fail(lease_of(job), Failure("ValueError: bad"))
        assert await store.fail(lease_of(job), Failure("ValueError: bad")) is False
        assert [orjson.loads(b)["id"] for b in outside.take("dead-letters")] == [job.id]


async def test_release_and_defer_give_the_attempt_back(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        await store.enqueue([new_job(headers={"a": 1})])
        job = await claim_one(store)
        assert await store.release(lease_of(job))
        job = await claim_one(store)
        assert job.attempts == 1

        assert await store.defer(lease_of(job), 0.0, {"b": 2})
        job = await claim_one(store)
        assert job.attempts == 1 and job.headers == {"b": 2}

        assert await store.defer(lease_of(job), 3.0)
        assert await store.claim("w", EVERYTHING, 1, 30.0) == []
        job = await claim_one(store)
        assert job.attempts == 1 and job.headers == {"b": 2} and job.recoveries == 0


async def test_a_job_that_keeps_losing_its_worker_is_dead_as_a_poison_pill(
    new_sqs_url: Callable[..., str],
) -> None:
    url = new_sqs_url(max_recoveries="2")
    outside = Outside(url)
    async with opened(url) as store:
        [job_id] = [r.id for r in await store.enqueue([new_job()])]
        # Given a job whose worker dies twice (its 1 s lease runs out twice)
        first = await claim_one(store, lease=1.0)
        second = await claim_one(store, lease=1.0)
        assert (first.recoveries, second.recoveries) == (0, 1)

        # When it comes back a third time, Then it is dead, not handed out
        async def dead_letters() -> list[str]:
            assert await store.claim("w", EVERYTHING, 1, 1.0) == []
            return outside.take("dead-letters")

        [body] = await eventually(dead_letters, what="the job in the dead queue")
        dead = orjson.loads(body)
        assert (dead["id"], dead["state"], dead["recoveries"]) == (job_id, "dead", 2)
        assert dead["last_error"] == poison_pill_reason(2)


# -- what a claim meets -----------------------------------------------------------------------
async def test_an_unreadable_message_costs_only_itself(sqs_url: str) -> None:
    outside = Outside(sqs_url)
    outside.send("default", "not a job")
    outside.send("default", '{"v": 1, "id": "x"}')
    async with opened(sqs_url) as store:
        [good] = [r.id for r in await store.enqueue([new_job()])]

        claimed = await store.claim("w", EVERYTHING, 10, 30.0)

        assert [j.id for j in claimed] == [good]
        quarantined = [orjson.loads(b) for b in outside.take("dead-letters")]
        assert sorted(q["raw"] for q in quarantined) == ["not a job", '{"v": 1, "id": "x"}']
        assert all(q["unreadable"] for q in quarantined)


async def test_an_unreadable_message_too_large_to_wrap_goes_to_the_dead_queue_as_it_is(
    sqs_url: str,
) -> None:
    outside = Outside(sqs_url)
    big = '"' * 200_000  # wrapped in JSON each quote doubles: over SQS's 256 KiB
    outside.send("default", big)
    async with opened(sqs_url) as store:
        [good] = [r.id for r in await store.enqueue([new_job()])]

        claimed = await store.claim("w", EVERYTHING, 10, 30.0)

        assert [j.id for j in claimed] == [good]
        reply = outside.client.receive_message(
            QueueUrl=outside.url("dead-letters"), MessageAttributeNames=["All"]
        )
        [dead] = reply["Messages"]
        assert dead["Body"] == big
        reason = dead["MessageAttributes"]["conveyor-unreadable"]["StringValue"]
        assert "not JSON" in reason


async def test_a_long_error_is_cut_so_the_retry_fits_in_sqs(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        await store.enqueue([new_job(payload=b"x" * 150_000)])
        job = await claim_one(store)
        error, traceback = "E" * 200_000, "T" * 200_000

        assert await store.fail(lease_of(job), Failure(error, traceback, retry_in=0.0))

        again = await claim_one(store)
        assert again.id == job.id and again.attempts == 2 and again.payload == job.payload
        assert again.traceback is not None and "cut" in again.traceback
        assert again.last_error is not None and again.last_error.startswith("EEEE")
        assert "cut" in again.last_error


async def test_a_job_due_after_sqs_longest_delay_waits_in_steps(sqs_url: str) -> None:
    outside = Outside(sqs_url)
    async with opened(sqs_url) as store:
        # Given a job due in an hour: SQS delays a message 15 minutes at most
        await store.enqueue([new_job(delay=3600.0)])
        assert outside.counts("default") == {"visible": 0, "in_flight": 0, "delayed": 1}
        # When its message comes up early (here: put there without a delay)
        now = time.time()
        early = new_record(new_job(delay=3600.0), now)
        outside.send("default", encode(early, now))

        # Then a claim does not hand it out but delays it again
        assert await store.claim("w", EVERYTHING, 10, 30.0) == []
        assert outside.counts("default") == {"visible": 0, "in_flight": 0, "delayed": 2}


async def test_a_job_for_a_task_this_worker_does_not_run_is_passed_over(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        [job_id] = [r.id for r in await store.enqueue([new_job(task="a.x")])]

        assert await store.claim("w", Routing(tasks=("b.y",)), 1, 30.0, wait=1.0) == []

        [job] = await store.claim("w", Routing(tasks=("a.x",)), 1, 30.0)
        assert job.id == job_id and job.recoveries == 0 and job.attempts == 1


async def test_a_waiting_claim_for_no_task_waits_without_polling(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        await store.enqueue([new_job(queue="q")])
        looked_up = []
        queues = store._conn.queues

        async def counted(routing: Routing) -> object:
            looked_up.append(routing)
            return await queues(routing)

        store._conn.queues = counted  # type: ignore[method-assign]

        # When a worker that runs no task waits for work, Then it waits, asking nothing
        assert await store.claim("w", Routing(queues=("q",), tasks=()), 1, 30.0, wait=1.0) == []
        assert looked_up == []


async def test_passing_over_ends_on_every_queue_of_a_claim(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        # Given two queues full of jobs of a task this worker does not run
        await store.enqueue([new_job(queue=q, task="a.x") for q in ("qa", "qb") for _ in range(3)])
        routing = Routing(queues=("qa", "qb"), tasks=("b.y",))

        # When it claims, Then the claim ends (each queue's messages passed over once)
        assert await asyncio.wait_for(store.claim("w", routing, 2, 30.0), 30) == []

        # and the jobs are all there for a worker that runs them, no lease counted lost
        jobs = await store.claim("w", Routing(tasks=("a.x",)), 10, 30.0)
        assert len(jobs) == 6 and {j.recoveries for j in jobs} == {0}


async def test_priorities_are_separate_queues_taken_in_order(sqs_url: str) -> None:
    outside = Outside(sqs_url)
    async with opened(sqs_url) as store:
        ids = [
            r.id
            for r in await store.enqueue(
                [new_job(queue="mail", priority=p) for p in (Priority.LOW, Priority.NORMAL)]
                + [new_job(queue="mail", priority=Priority.HIGH)]
            )
        ]
        assert {n: outside.counts(n)["visible"] for n in ("mail", "mail-high", "mail-low")} == {
            "mail": 1,
            "mail-high": 1,
            "mail-low": 1,
        }

        order = [j.id for _ in range(3) for j in await store.claim("w", EVERYTHING, 1, 30.0)]

        assert order == [ids[2], ids[1], ids[0]]


# -- FIFO queues and unique keys --------------------------------------------------------------
async def test_unique_keys_need_fifo_queues(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        with pytest.raises(Exception, match=r"unique keys only on FIFO queues.*\?fifo=true"):
            await store.enqueue([new_job(unique_key="k")])


async def test_on_fifo_queues_a_unique_key_is_the_deduplication_id(
    new_sqs_url: Callable[..., str],
) -> None:
    url = new_sqs_url(fifo="true")
    async with opened(url) as store:
        first = new_job(unique_key="report-7")
        results = await store.enqueue([first, new_job(unique_key="report-7")])
        assert [(r.id, r.existing) for r in results] == [(first.id, False), (first.id, True)]
        # A second enqueue of the key within SQS's 5 minutes is dropped by SQS
        await store.enqueue([new_job(unique_key="report-7"), new_job()])

        claimed = await store.claim("w", EVERYTHING, 10, 30.0, wait=1.0)

        assert len(claimed) == 2 and first.id in {j.id for j in claimed}
        for job in claimed:
            assert await store.complete(lease_of(job), None)


async def test_a_delayed_job_on_a_fifo_queue_waits_without_counting_a_lost_lease(
    new_sqs_url: Callable[..., str],
) -> None:
    url = new_sqs_url(fifo="true", max_recoveries="1")
    async with opened(url) as store:
        [job_id] = [r.id for r in await store.enqueue([new_job(delay=3.0)])]
        assert await store.claim("w", EVERYTHING, 1, 30.0) == []

        job = await claim_one(store)

        assert (job.id, job.recoveries, job.attempts) == (job_id, 0, 1)


# -- the sync verbs ---------------------------------------------------------------------------
async def test_enqueue_sync_sends_from_code_without_an_event_loop(sqs_url: str) -> None:
    async with opened(sqs_url) as store:
        results = await asyncio.to_thread(store.enqueue_sync, [new_job(), new_job()])
        assert store.get_sync(results[0].id) is None  # SQS cannot read a message by id

        claimed = await store.claim("w", EVERYTHING, 10, 30.0)

        assert [j.id for j in claimed] == [r.id for r in results]
