"""Setting up the SQS store: its URL, what it offers and lacks, a second store for limits,
the lazy import of its driver, and what it costs in SQS requests per job."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.contract.support import new_job
from typer.testing import CliRunner

from conveyor.backends import create_backend
from conveyor.backends.capabilities import Admin, Limits, Scheduling, Telemetry, Unsupported
from conveyor.backends.sqs import SqsBackend, parse_url
from conveyor.cli import app as cli_app
from conveyor.errors import ConfigError
from conveyor.job import Failure, Lease, Routing

from .support import Outside, opened


# -- the URL ----------------------------------------------------------------------------------
def test_the_url_names_region_server_prefix_and_rules() -> None:
    options = parse_url(
        "sqs://eu-west-1?endpoint_url=http://127.0.0.1:9324&prefix=shop-&create=false"
        "&fifo=true&max_recoveries=5&limits=redis://cache:6379/0"
    )
    assert (options.region, options.endpoint_url, options.prefix) == (
        "eu-west-1",
        "http://127.0.0.1:9324",
        "shop-",
    )
    assert (options.create, options.fifo, options.max_recoveries) == (False, True, 5)
    assert options.limits == "redis://cache:6379/0"
    plain = parse_url("sqs://us-gov-west-1")
    assert (plain.prefix, plain.create, plain.fifo, plain.endpoint_url) == (
        "conveyor-",
        True,
        False,
        None,
    )
    assert parse_url("sqs://eu-west-1?prefix=").prefix == ""


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqs://", "write sqs://REGION"),
        ("sqs://Europe", "not an AWS region name"),
        ("sqs://eu-west-1?queue=x", "unknown option 'queue'"),
        ("sqs://eu-west-1?prefix=a.b", "cannot start an SQS queue name"),
        ("sqs://eu-west-1?create=maybe", "create='maybe' is not a yes/no value"),
        ("sqs://eu-west-1?max_recoveries=0", "max_recoveries='0'"),
        ("sqs://eu-west-1?endpoint_url=localhost:9324", "not an http:// or https:// URL"),
        ("sqs://eu-west-1?limits=memory://", None),
    ],
)
def test_a_bad_url_is_one_clear_line(url: str, says: str | None) -> None:
    if says is None:  # memory:// has limits, but only within one process: allowed
        assert create_backend(url).capabilities == frozenset({"limits"})
        return
    with pytest.raises(ConfigError) as info:
        create_backend(url)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_queue_sqs_cannot_name_is_refused_at_enqueue(sqs_url: str) -> None:
    store = create_backend(sqs_url)
    try:
        for queue, says in (("a.b", "cannot be an SQS queue"), ("mail-high", "<queue>-high")):
            with pytest.raises(ConfigError, match=says):
                store.enqueue_sync([new_job(queue=queue)])
    finally:
        asyncio.run(store.close())  # ends enqueue_sync's thread and its client


async def test_create_false_uses_only_queues_that_exist(new_sqs_url: Callable[..., str]) -> None:
    url = new_sqs_url(create="false")
    # The dead queue must exist: without it a dead job would have nowhere to go
    with pytest.raises(ConfigError, match=r"dead-letters.* does not exist .* create=false"):
        async with opened(url):
            pass
    Outside(url).url("dead-letters")
    async with opened(url) as store:
        assert await store.claim("w", Routing(queues=("jobs",)), 1, 30.0) == []
        with pytest.raises(ConfigError, match=r"does not exist .* create=false"):
            await store.enqueue([new_job(queue="jobs")])


async def test_an_empty_prefix_serves_named_queues_only(new_sqs_url: Callable[..., str]) -> None:
    url = new_sqs_url(prefix="")
    async with opened(url) as store:
        name = f"e{os.urandom(4).hex()}"
        [job_id] = [r.id for r in await store.enqueue([new_job(queue=name)])]
        with pytest.raises(ConfigError, match="empty prefix"):
            await store.claim("w", Routing(), 1, 30.0)
        [job] = await store.claim("w", Routing(queues=(name,)), 1, 30.0)
        assert job.id == job_id


async def test_a_queue_deleted_while_a_worker_serves_it_is_skipped(sqs_url: str) -> None:
    outside = Outside(sqs_url)
    async with opened(sqs_url) as store:
        await store.enqueue([new_job(queue="gone")])
        assert await store.claim("w", Routing(queues=("gone",)), 0, 30.0) == []
        # When the SQS queue is deleted behind the store's back
        outside.client.delete_queue(QueueUrl=outside.url("gone"))

        # Then a claim finds nothing there,
        assert await store.claim("w", Routing(queues=("gone",)), 1, 30.0) == []
        # and after another deletion, a new job makes the queue again
        [job_id] = [r.id for r in await store.enqueue([new_job(queue="gone")])]
        outside.client.delete_queue(QueueUrl=outside.url("gone"))
        [job_id] = [r.id for r in await store.enqueue([new_job(queue="gone")])]
        [job] = await store.claim("w", Routing(queues=("gone",)), 1, 30.0)
        assert job.id == job_id


# -- what the store offers --------------------------------------------------------------------
def test_the_store_has_the_core_only_and_says_what_it_lacks(sqs_url: str) -> None:
    store = create_backend(sqs_url)
    assert isinstance(store, SqsBackend)
    assert store.capabilities == frozenset()
    assert store.clone().capabilities == frozenset()
    for capability in (Admin, Scheduling, Telemetry, Limits):
        with pytest.raises(Unsupported) as info:
            store.require(capability, purpose="the test")
        assert f"sqs:// store {capability.lacking}" in str(info.value)


def test_conveyor_status_refuses_the_sqs_store_in_one_line(sqs_url: str) -> None:
    shown = CliRunner().invoke(cli_app, ["status", "--url", sqs_url])

    assert shown.exit_code != 0, shown.output
    assert "sqs:// store cannot list, count, repair or pause jobs" in shown.output
    assert "Traceback" not in shown.output


async def test_limits_kept_in_a_second_store(
    new_sqs_url: Callable[..., str], tmp_path: Path
) -> None:
    # Given an SQS store whose rate limits and slots live in a SQLite file
    url = new_sqs_url(limits=f"sqlite:///{tmp_path / 'limits.db'}")
    async with opened(url) as first, opened(url) as second:
        assert first.capabilities == frozenset({"limits"})
        # When two handles take from one window of 2 starts per minute
        granted = [
            await first.limits.rate_acquire("api", 2, 60.0),
            await second.limits.rate_acquire("api", 2, 60.0),
            await first.clone().limits.rate_acquire("api", 2, 60.0),
        ]
        # Then the window is shared: the third start must wait
        assert granted[:2] == [0.0, 0.0] and granted[2] > 0
        assert await first.limits.slot_acquire("db", "a", 1, 30.0)
        assert not await second.limits.slot_acquire("db", "b", 1, 30.0)


# -- the driver is imported only when used ----------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_conveyor_does_not_import_aiobotocore() -> None:
    done = _python(
        "import sys, conveyor, conveyor.backends\n"
        "assert not {'aiobotocore', 'botocore'} & set(sys.modules), sorted(sys.modules)\n"
        "print('ok')"
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_without_aiobotocore_the_store_names_the_extra() -> None:
    done = _python(
        "import sys\n"
        "sys.modules['aiobotocore'] = None\n"
        "sys.modules['aiobotocore.session'] = None\n"
        "from conveyor.backends import create_backend\n"
        "from conveyor.errors import ConfigError\n"
        "try:\n"
        "    create_backend('sqs://eu-west-1')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    assert "pip install 'conveyor[sqs]'" in done.stdout, done.stdout + done.stderr


# -- costs ------------------------------------------------------------------------------------
async def test_sqs_requests_per_job(sqs_url: str) -> None:
    """What docs/sqs.md's cost table says, counted at the client on real requests."""
    async with opened(sqs_url) as store:
        calls: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        store._conn.client.meta.events.register("before-call.sqs", count)
        # 100 jobs in one bulk enqueue: 10 SendMessageBatch (and the queue, found once)
        await store.enqueue([new_job(queue="jobs") for _ in range(100)])
        assert calls == Counter(GetQueueUrl=1, CreateQueue=1, SendMessageBatch=10)
        calls.clear()
        # a single enqueue: one SendMessageBatch
        await store.enqueue([new_job(queue="jobs")])
        assert calls == Counter(SendMessageBatch=1)
        calls.clear()
        # claims of 10: one ReceiveMessage per 10 jobs (and one that finds the queue empty);
        # the queue's high and low SQS queues are looked up, found missing (again each 5 s)
        claimed = []
        while batch := await store.claim("w", Routing(queues=("jobs",)), 10, 30.0):
            claimed += batch
        assert len(claimed) == 101
        assert calls == Counter(ReceiveMessage=12, GetQueueUrl=2)
        calls.clear()
        # a heartbeat: one ChangeMessageVisibility per running job
        assert await store.extend([Lease(j.id, j.lease_token or "") for j in claimed[:10]], 30)
        assert calls == Counter(ChangeMessageVisibility=10)
        calls.clear()
        # a success: one DeleteMessage; a retry: a new message and a delete
        for job in claimed[:100]:
            assert await store.complete(Lease(job.id, job.lease_token or ""), None)
        assert calls == Counter(DeleteMessage=100)
        calls.clear()
        last = claimed[100]
        assert await store.fail(Lease(last.id, last.lease_token or ""), Failure("x", retry_in=5))
        assert calls == Counter(SendMessageBatch=1, DeleteMessage=1)


async def test_a_worker_runs_limited_tasks_with_limits_in_a_second_store(
    new_sqs_url: Callable[..., str], tmp_path: Path
) -> None:
    from conveyor import Conveyor, Worker

    # Given an app on SQS whose limits live in a SQLite file, and a task allowed one at a time
    app = Conveyor(new_sqs_url(limits=f"sqlite:///{tmp_path / 'limits.db'}"))
    running: list[int] = []
    most: list[int] = [0]

    @app.task(name="t.one_at_a_time", max_concurrency=1)
    async def one_at_a_time(n: int) -> None:
        running.append(n)
        most[0] = max(most[0], len(running))
        await asyncio.sleep(0.05)
        running.remove(n)

    try:
        for n in range(4):
            await one_at_a_time.enqueue_async(n)
        # When a worker with room for four runs them (a job without a slot waits its turn)
        worker = Worker(app, concurrency=4, poll_interval=0.2)
        run = asyncio.create_task(worker.run())
        deadline = asyncio.get_running_loop().time() + 60
        while worker.counts.succeeded < 4 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        worker.stop()
        await asyncio.wait_for(run, 30)
    finally:
        await app.aclose()

    # Then all ran, never two at once
    assert worker.counts.succeeded == 4 and most[0] == 1
