"""What SQS cannot do, said as such: a job cannot be read by id (``conveyor jobs show``,
`JobHandle`), and the seed's ``SQS_QUEUE_*`` names are the SQS queues jobs go to, even when
their common prefix is empty.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor import Conveyor, JobHandle, JobNotFound
from conveyor.cli import app as cli_app

from .support import Outside

CANNOT = "cannot be looked up: the sqs:// store cannot read a job by its id"


def test_jobs_show_says_the_store_cannot_read_jobs(sqs_url: str) -> None:
    # Given a job in an SQS store
    app = Conveyor(sqs_url)

    @app.task(name="noop")
    def noop() -> None: ...

    handle = noop.enqueue()
    app.close()
    # When it is asked for by id
    shown = CliRunner().invoke(cli_app, ["jobs", "show", handle.id, "--url", sqs_url])
    # Then the answer is that SQS cannot read it, not that it does not exist
    assert shown.exit_code == 1, shown.output
    assert f"job {handle.id} {CANNOT}" in shown.output
    assert "does not exist" not in shown.output


async def test_a_handle_says_the_store_cannot_read_jobs(sqs_url: str) -> None:
    app = Conveyor(sqs_url)

    @app.task(name="noop")
    def noop() -> None: ...

    try:
        handle = await noop.enqueue_async()
        # Every read fails at once, saying why: no wait for a result that cannot come
        with pytest.raises(JobNotFound, match=CANNOT):
            await handle.result_async(timeout=60)
        with pytest.raises(JobNotFound, match=CANNOT):
            await handle.info_async()
    finally:
        await app.aclose()


def test_a_sync_handle_says_the_store_cannot_read_jobs(sqs_url: str) -> None:
    app = Conveyor(sqs_url)

    @app.task(name="noop")
    def noop() -> None: ...

    handle = noop.enqueue()
    try:
        for read in (handle.state, lambda: handle.result(timeout=60)):
            with pytest.raises(JobNotFound, match=CANNOT):
                read()
    finally:
        app.close()


def test_a_store_that_reads_jobs_still_says_not_found() -> None:
    with pytest.raises(JobNotFound, match="job no-such-job does not exist"):
        JobHandle(Conveyor("memory://"), "no-such-job").state()


def test_seed_queue_names_without_a_common_prefix_are_the_sqs_queues(
    moto_endpoint: str,
    new_sqs_url: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Given a Laravel .env on SQS whose queue name has no prefix at all (a queue of its own)
    queue = f"q{os.urandom(5).hex()}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    for name, value in {
        "QUEUE_CONNECTION": "sqs",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "SQS_PREFIX": f"{moto_endpoint}/123456789012",
        f"SQS_QUEUE_{queue.upper()}": queue,
    }.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = Conveyor()

    @app.task(name="noop", queue=queue)
    def noop() -> None: ...

    # When a job is enqueued on that queue
    try:
        noop.enqueue()
    finally:
        app.close()
    # Then it is in the SQS queue the variable names, not under the default prefix
    client = Outside(new_sqs_url()).client
    assert client.list_queues(QueueNamePrefix=f"conveyor-{queue}").get("QueueUrls", []) == []
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"
