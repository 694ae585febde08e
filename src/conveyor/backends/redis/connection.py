"""`RedisConnection`, the one object a handle's parts share, and how its calls go out:
scripts (waiting for replicas when the URL asks) and the translation of redis-py's errors
into Conveyor's. The clients it opens, and their timeouts, are in `clients`; the
persistence check at open is in `persistence`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from conveyor.backends.redis import acl
from conveyor.backends.redis.clients import async_client, sync_client
from conveyor.backends.redis.keys import Keys, Target, parse_url
from conveyor.backends.redis.persistence import check_persistence
from conveyor.backends.redis.scripts import load_all, run, run_sync, script
from conveyor.clock import Clock, SystemClock
from conveyor.errors import BackendError, BackendUnavailable


class RedisConnection:
    """One handle's way to a store: its keys, its clients, its clock and its wake list.

    `RedisBackend` and each of its parts (limits, scheduling, admin, telemetry) hold the
    same instance, so they share the clients and speak with one clock. A clone of the
    backend gets a new one (new clients, a new wake list) on the same store and clock.
    """

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.target = parse_url(url)
        self.keys = Keys(self.target.prefix)
        #: The server's clock (TIME) unless a clock was injected, e.g. a FakeClock in tests.
        self.server_time = isinstance(clock, SystemClock)
        #: This handle's name among parked workers, and so its wake list.
        self.waiter = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._aclient: AsyncRedis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sclient: Redis | None = None

    def client(self) -> AsyncRedis:
        """The asyncio client of the running event loop.

        asyncio connections belong to one event loop; a handle used from a new loop
        (asyncio.run called twice) gets fresh ones.
        """
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._loop is not loop:
            self._aclient = async_client(self.target)
            self._loop = loop
        return self._aclient

    def sync(self) -> Redis:
        """The thread-safe sync client, made on first use."""
        if self._sclient is None:
            self._sclient = sync_client(self.target)
        return self._sclient

    def now(self) -> str:
        """The ``now`` argument every script takes: ``""`` asks the server (TIME)."""
        return "" if self.server_time else repr(self.clock.now())

    async def run(self, name: str, keys: Sequence[str], *args: Any) -> Any:
        """Run script ``name`` with the store's prefix and now before ``args``; a script
        in `REPLICATED` waits for ``wait_replicas`` replicas when the URL asks for it."""
        with translated(self.target):
            try:
                if self.target.wait_replicas and name in REPLICATED:
                    return await run_replicated(self, name, keys, args)
                return await run(self.client(), name, keys, [self.keys.base, self.now(), *args])
            except ResponseError as exc:
                if not acl.denied_in_script(exc):
                    raise
                probe = self.keys.base + "acl-probe"
                raise await acl.explain_script_denial(
                    self.client(), self.target, probe, name, exc
                ) from exc

    def run_sync(self, name: str, keys: Sequence[str], *args: Any) -> Any:
        """`run` on the sync client."""
        with translated(self.target):
            try:
                if self.target.wait_replicas and name in REPLICATED:
                    return run_replicated_sync(self, name, keys, args)
                return run_sync(self.sync(), name, keys, [self.keys.base, self.now(), *args])
            except ResponseError as exc:
                if not acl.denied_in_script(exc):
                    raise
                probe = self.keys.base + "acl-probe"
                raise acl.explain_script_denial_sync(
                    self.sync(), self.target, probe, name, exc
                ) from exc

    async def open(self) -> None:
        """Connect, load the scripts, and warn about settings that can lose jobs."""
        client = self.client()
        with translated(self.target):
            await client.ping()
            await load_all(client)
            await check_persistence(client, self.target)

    async def unblock(self) -> None:
        """Push a token to this handle's own wake list, ending its blocking pop at once."""
        key = self.keys.wake(self.waiter)
        with contextlib.suppress(Exception):
            async with self.client().pipeline(transaction=False) as pipe:
                pipe.lpush(key, "1")
                pipe.expire(key, 300)  # as scripts' wake-ups do: never left behind for good
                await pipe.execute()

    async def close(self) -> None:
        """Leave the waiters, close the clients; safe to call twice."""
        client, loop = self._aclient, self._loop
        self._aclient = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await client.hdel(self.keys.waiters, self.waiter)
                await client.delete(self.keys.wake(self.waiter))
            # Closed even when the server is gone: a Sentinel client holds sockets to the
            # sentinels too.
            with contextlib.suppress(Exception):
                await client.aclose()
        if self._sclient is not None:
            self._sclient.close()
            self._sclient = None


@contextlib.contextmanager
def translated(target: Target) -> Iterator[None]:
    """Turn redis-py errors into Conveyor's, naming the server and what to do."""
    try:
        try:
            yield
        except RedisError as exc:
            special = _failover_or_access(target, exc)
            if special is None:
                raise  # to the general translations below
            raise special from exc
    except AuthenticationError as exc:
        raise BackendUnavailable(
            f"Redis at {target.display} refused the credentials: {exc}. Put the password "
            "in the URL (redis://:PASSWORD@host:6379/0 or redis://USER:PASSWORD@host/0)."
        ) from exc
    except BusyLoadingError as exc:
        raise BackendUnavailable(
            f"Redis at {target.display} is still loading its data after a restart; "
            "try again in a moment."
        ) from exc
    except RedisTimeoutError as exc:
        raise BackendUnavailable(
            f"Redis at {target.display} did not answer in time ({exc}); it may be down, "
            "overloaded or unreachable. Check the server and the network, then retry."
        ) from exc
    except RedisConnectionError as exc:
        raise BackendUnavailable(
            f"cannot reach Redis at {target.display}: {exc}. Check that redis-server is "
            "running and reachable, or point CONVEYOR_URL at it."
        ) from exc
    except ResponseError as exc:
        hint = ""
        if str(exc).startswith("OOM"):
            hint = " Redis is out of memory: raise maxmemory or purge finished jobs."
        raise BackendError(f"Redis at {target.display} rejected a command: {exc}.{hint}") from exc
    except RedisError as exc:
        raise BackendError(f"Redis at {target.display} failed: {exc}") from exc


# -- replication (see docs/redis.md, "High availability") ------------------------------
#: Scripts whose changes must survive a failover: with ``?wait_replicas=N`` each call is
#: followed by WAIT on the same connection. Completions and failures are not waited for:
#: one lost in a failover makes its job run again, as at-least-once allows.
REPLICATED = frozenset({"enqueue", "tick", "retry_dead", "cancel", "pause"})


async def run_replicated(
    conn: RedisConnection, name: str, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """Run a script, then WAIT on the same connection (one pipeline, one round trip)."""
    client, s = conn.client(), script(name)
    target = conn.target
    for _ in range(2):
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(s.sha, len(keys), *keys, conn.keys.base, conn.now(), *args)
            pipe.execute_command("WAIT", target.wait_replicas, target.wait_timeout_ms)
            reply, acked = await pipe.execute(raise_on_error=False)
        if isinstance(reply, NoScriptError):
            await client.script_load(s.source)
            continue
        return _replicated(target, name, reply, acked)
    raise BackendError(f"Redis at {target.display} kept forgetting the {name} script")


def run_replicated_sync(
    conn: RedisConnection, name: str, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """`run_replicated` on the sync client."""
    client, s = conn.sync(), script(name)
    target = conn.target
    for _ in range(2):
        with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(s.sha, len(keys), *keys, conn.keys.base, conn.now(), *args)
            pipe.execute_command("WAIT", target.wait_replicas, target.wait_timeout_ms)  # type: ignore[no-untyped-call]
            reply, acked = pipe.execute(raise_on_error=False)
        if isinstance(reply, NoScriptError):
            client.script_load(s.source)
            continue
        return _replicated(target, name, reply, acked)
    raise BackendError(f"Redis at {target.display} kept forgetting the {name} script")


def _replicated(target: Target, name: str, reply: Any, acked: Any) -> Any:
    """The script's reply once WAIT confirmed enough replicas; raises otherwise."""
    if isinstance(reply, Exception):
        raise reply
    if isinstance(acked, Exception):
        raise acked
    if int(acked) < target.wait_replicas:
        raise BackendUnavailable(
            f"Redis at {target.display} applied the {name} but only {int(acked)} of "
            f"wait_replicas={target.wait_replicas} replicas confirmed it within "
            f"{target.wait_timeout_ms} ms: a failover now could lose it. Check the replicas "
            "(conveyor status lists them); enqueueing the same job id again is safe."
        )
    return reply


def _failover_or_access(target: Target, exc: RedisError) -> BackendError | None:
    """Conveyor's error for a demoted primary, a sentinel without a primary, a TLS
    certificate refused or an ACL denial; ``None`` for the other errors."""
    text = str(exc)
    if isinstance(exc, ReadOnlyError) or text.startswith(("READONLY", "UNBLOCKED")):
        return BackendUnavailable(
            f"Redis at {target.display} is a read-only replica now (a failover demoted it, "
            "or the URL names a replica); retrying reaches the primary when the URL is a "
            "redis+sentinel:// one."
        )
    sentinel = type(exc).__name__ in ("MasterNotFoundError", "SlaveNotFoundError")
    if sentinel:
        text = _sentinel_reasons(text)
    if sentinel and "CERTIFICATE_VERIFY_FAILED" not in text:
        return BackendUnavailable(
            f"no sentinel of {target.display} names a reachable primary for the service "
            f"{target.service!r} ({text or 'none answered'}): check the service name and that "
            "the sentinels run; during a failover this lasts a few seconds."
        )
    if isinstance(exc, RedisConnectionError) and "CERTIFICATE_VERIFY_FAILED" in text:
        reason = text.split("CERTIFICATE_VERIFY_FAILED]", 1)[-1].split("(_ssl", 1)[0]
        return BackendUnavailable(
            f"Redis at {target.display} presented a TLS certificate that was refused "
            f"({reason.strip(' ]:') or 'certificate verify failed'}): point ssl_ca_certs at "
            "the CA file that signed the server's certificate and connect by a name the "
            "certificate lists."
        )
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
        found = re.search(r"run the '([^']+)' command", text)
        if found:
            return acl.denial(target, [found.group(1).lower()], text)
        return BackendError(
            f"Redis at {target.display} does not let the ACL user {acl.user_of(target)!r} "
            f"touch the store's keys ({text}): grant ~{{PREFIX}}:* as in the ACL line in "
            "docs/redis.md."
        )
    return None


def _sentinel_reasons(text: str) -> str:
    """redis-py's "No master found" text without the sentinel clients' long reprs: the
    service, then each sentinel's error (``No master found for 'x': Error 111 ...``)."""
    head, *errors = text.split("> - ")
    reasons = []
    for error in errors:
        one = error.split(", <redis.", 1)[0]
        # "network:ConnectionError: the message" (or "ConnectionError('...'): ..."): the message
        reasons.append(re.sub(r"^(?:\w+:)?\w+Error(?:\(.*?\))?: ", "", one, count=1))
    head = head.split(" : ", 1)[0]
    return f"{head}: {'; '.join(reasons)}" if reasons else head
