"""Helpers for the SQS store's tests: an opened store, a plain botocore client to look at
moto's queues from outside, and waits with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from conveyor.backends import create_backend
from conveyor.backends.sqs import SqsBackend
from conveyor.job import JobRecord, Routing

T = TypeVar("T")
EVERYTHING = Routing()


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[SqsBackend]:
    """The store at ``url``, opened, closed after."""
    store = create_backend(url)
    assert isinstance(store, SqsBackend)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def eventually(make: Callable[[], Awaitable[T]], *, timeout: float = 10.0, what: str) -> T:
    """Call ``make`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await make()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def claim_one(store: SqsBackend, lease: float = 30.0, worker: str = "w") -> JobRecord:
    """Claim exactly one job, waiting up to 10 s for it."""
    jobs = await eventually(
        lambda: store.claim(worker, EVERYTHING, 1, lease, wait=0.5), what="a job to claim"
    )
    [job] = jobs
    return job


class Outside:
    """A plain botocore client on the store's endpoint, for looking at its queues."""

    def __init__(self, url: str) -> None:
        import botocore.session

        query = parse_qs(urlsplit(url).query)
        self.prefix = query["prefix"][0]
        self.client: Any = botocore.session.get_session().create_client(
            "sqs", region_name="eu-west-1", endpoint_url=query["endpoint_url"][0]
        )

    def url(self, name: str) -> str:
        """The URL of the SQS queue ``{prefix}{name}`` (created if missing)."""
        return str(self.client.create_queue(QueueName=self.prefix + name)["QueueUrl"])

    def send(self, name: str, body: str) -> None:
        """Put a raw message in ``{prefix}{name}``."""
        self.client.send_message(QueueUrl=self.url(name), MessageBody=body)

    def take(self, name: str, count: int = 10) -> list[str]:
        """Receive (and delete) the bodies waiting in ``{prefix}{name}``."""
        url = self.url(name)
        reply = self.client.receive_message(QueueUrl=url, MaxNumberOfMessages=count)
        bodies = []
        for message in reply.get("Messages", []):
            bodies.append(message["Body"])
            self.client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def counts(self, name: str) -> dict[str, int]:
        """SQS's approximate counts for ``{prefix}{name}``: visible, in flight, delayed."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.url(name), AttributeNames=["All"]
        )["Attributes"]
        return {
            "visible": int(attributes["ApproximateNumberOfMessages"]),
            "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attributes["ApproximateNumberOfMessagesDelayed"]),
        }
