"""`SqsConnection`: the aiobotocore client a handle uses, and the queues it knows.

aiobotocore (and botocore) are imported here and only when an ``sqs://`` store is built,
so ``import conveyor`` never needs them; without them the store says to install
``conveyor[sqs]``. Credentials come from botocore's standard chain.

Queue URLs are cached: a queue's URL never changes. The list of queues a routing matches
(``ListQueues`` under the prefix) is cached for `LIST_TTL` seconds, so a queue another
process creates is seen by a worker serving a pattern within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.backends.sqs.naming import Names, QueueName
from conveyor.backends.sqs.options import SqsOptions
from conveyor.errors import BackendError, BackendUnavailable, ConfigError
from conveyor.job import Priority, Routing

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

#: Seconds a listing of the prefix's queues is reused.
LIST_TTL = 5.0
#: The longest long poll (SQS allows 20 s; shorter keeps shutdown and cancellation prompt).
LONG_POLL = 5
#: Seconds to keep a message when nobody changes its visibility (14 days, SQS's maximum).
RETENTION = "1209600"
_GLOB = set("*?[")
#: SQS's error codes for a queue that does not exist.
MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _aiobotocore() -> Any:
    try:
        from aiobotocore.session import get_session
    except ImportError as exc:
        raise ConfigError(
            f"the sqs:// backend needs aiobotocore ({exc}): pip install 'conveyor[sqs]'"
        ) from None
    return get_session


class SqsConnection:
    """One aiobotocore client and the queue names and URLs it has looked up."""

    def __init__(self, options: SqsOptions) -> None:
        self.options = options
        self.names = Names(options.prefix, fifo=options.fifo)
        self._session = _aiobotocore()()
        self._client: SQSClient | None = None
        self._stack = contextlib.AsyncExitStack()
        self._urls: dict[str, str] = {}
        self._missing: dict[str, float] = {}  # names found missing, when (monotonic)
        self._listed: tuple[float, list[QueueName]] | None = None

    async def open(self) -> None:
        """Create the client (no request is sent)."""
        if self._client is not None:
            return
        from botocore.config import Config

        config = Config(
            connect_timeout=5,
            read_timeout=LONG_POLL + 15,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self._client = await self._stack.enter_async_context(
            self._session.create_client(
                "sqs",
                region_name=self.options.region,
                endpoint_url=self.options.endpoint_url,
                config=config,
            )
        )

    async def close(self) -> None:
        """Close the client."""
        self._client = None
        await self._stack.aclose()

    @property
    def client(self) -> SQSClient:
        """The open client."""
        if self._client is None:
            raise BackendError("the sqs:// store is not open: call open() first")
        return self._client

    # -- queues ----------------------------------------------------------------------------
    async def url(self, name: str, *, create: bool = False) -> str | None:
        """The URL of the SQS queue ``name``; created when missing and ``create`` (and the
        URL allows it), else ``None``."""
        known = self._urls.get(name)
        if known is not None:
            return known
        missing = self._missing.get(name)
        if not create and missing is not None and time.monotonic() - missing < LIST_TTL:
            return None
        try:
            found = (await self.call("GetQueueUrl", QueueName=name))["QueueUrl"]
        except BackendError as exc:
            if not isinstance(exc.__cause__, _client_error()) or _code(exc.__cause__) not in (
                MISSING
            ):
                raise
            if not create:
                self._missing[name] = time.monotonic()
                return None
            found = await self._create(name)
        self._urls[name] = found
        self._missing.pop(name, None)
        return str(found)

    async def _create(self, name: str) -> str:
        if not self.options.create:
            raise ConfigError(
                f"the SQS queue {name!r} does not exist and the sqs:// URL says create=false: "
                "create it (with the same name) or drop create=false"
            )
        attributes = {"MessageRetentionPeriod": RETENTION}
        if self.options.fifo:
            attributes["FifoQueue"] = "true"
        reply = await self.call("CreateQueue", QueueName=name, Attributes=attributes)
        self._listed = None
        return str(reply["QueueUrl"])

    async def queues(self, routing: Routing) -> list[tuple[QueueName, str]]:
        """The SQS queues ``routing`` matches that exist, in claim order, with their URLs:
        high before normal before low, then by queue name."""
        priorities = routing.priorities if routing.priorities is not None else tuple(Priority)
        if routing.queues is not None and not any(_GLOB & set(q) for q in routing.queues):
            names = [self.names.of(q, p) for p in priorities for q in sorted(set(routing.queues))]
        elif not self.options.prefix:
            # Every queue in the account would match: another application's messages would
            # be taken for unreadable jobs and moved to the dead queue.
            raise ConfigError(
                "the sqs:// store has an empty prefix, so it cannot tell its queues from the "
                "account's other SQS queues: name the worker's queues (--queues jobs,mail, "
                "no patterns) or set ?prefix="
            )
        else:
            wanted = Routing(queues=routing.queues, priorities=priorities)
            names = [n for n in await self._list() if wanted.matches(n.queue, n.priority, "")]
        found = []
        for name in sorted(names, key=lambda n: (n.priority, n.queue)):
            url = await self.url(name.sqs, create=False)
            if url is not None:
                found.append((name, url))
        return found

    async def _list(self) -> list[QueueName]:
        now = time.monotonic()
        if self._listed is not None and now - self._listed[0] < LIST_TTL:
            return self._listed[1]
        urls: list[str] = []
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            reply = await self.call(
                "ListQueues", QueueNamePrefix=self.options.prefix, MaxResults=1000, **extra
            )
            urls.extend(reply.get("QueueUrls", []))
            token = reply.get("NextToken")
            if not token:
                break
        listed = []
        for url in urls:
            name = self.names.parse(url.rstrip("/").rsplit("/", 1)[-1])
            if name is not None:
                self._urls.setdefault(name.sqs, url)
                listed.append(name)
        # An empty listing is not kept: the first queue made by another process is then
        # found at the next claim, not 5 s later (listing nothing costs one cheap request).
        self._listed = (now, listed) if listed else None
        return listed

    def forget(self, name: str) -> None:
        """Drop a cached URL (its queue was deleted)."""
        self._urls.pop(name, None)
        self._listed = None

    # -- calls -----------------------------------------------------------------------------
    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One SQS API call; errors become `BackendUnavailable` (cannot reach SQS) or
        `BackendError` (SQS refused), naming the operation."""
        method = getattr(self.client, _snake(operation))
        try:
            reply: dict[str, Any] = await method(**params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise translate(operation, exc, self.options) from exc
        return reply

    async def send_batch(self, url: str, entries: Sequence[dict[str, Any]]) -> list[str]:
        """``SendMessageBatch``; returns the entry ids SQS did not accept."""
        reply = await self.call("SendMessageBatch", QueueUrl=url, Entries=list(entries))
        return [failed["Id"] for failed in reply.get("Failed", [])]


def translate(operation: str, exc: Exception, options: SqsOptions) -> BackendError:
    """A botocore error as Conveyor's: unreachable → `BackendUnavailable`, else `BackendError`."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    where = options.endpoint_url or f"SQS in {options.region}"
    if isinstance(exc, NoCredentialsError):
        return BackendUnavailable(
            f"SQS {operation} at {where}: no AWS credentials were found (set AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with a role)"
        )
    if isinstance(exc, (BotoConnectionError, OSError, asyncio.TimeoutError)):
        return BackendUnavailable(f"SQS {operation} at {where} failed: cannot reach it ({exc})")
    if isinstance(exc, ClientError):
        return BackendError(f"SQS {operation} at {where} was refused: {_code(exc)}: {exc}")
    if isinstance(exc, BotoCoreError):
        return BackendUnavailable(f"SQS {operation} at {where} failed: {exc}")
    return BackendError(f"SQS {operation} at {where} failed: {type(exc).__name__}: {exc}")


def _client_error() -> type[Exception]:
    from botocore.exceptions import ClientError

    return ClientError


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_code(exc: BaseException) -> str:
    """The SQS error code behind a `BackendError` from `SqsConnection.call` (or ``""``)."""
    return _code(exc.__cause__) if exc.__cause__ is not None else ""


def _snake(operation: str) -> str:
    out = [operation[0].lower()]
    for char in operation[1:]:
        out.append(f"_{char.lower()}" if char.isupper() else char)
    return "".join(out)
