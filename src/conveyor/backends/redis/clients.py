"""The Redis clients a store's connection opens: plain, TLS, Sentinel and Cluster, with
their timeouts and one quick reconnect (see docs/redis.md, "High availability").

Timeouts are short on purpose: an enqueue while Redis is down must fail within seconds
with `BackendUnavailable`, never hang. A dead pooled connection (Redis restarted) is
retried once on a fresh connection; anything longer is the caller's back-off (the worker
already retries claims and acknowledgements).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, cast
from urllib.parse import urlencode

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from conveyor.backends.redis.keys import Target

#: Seconds to open a TCP (or TLS) connection, and to wait for any reply.
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 5.0


def _options() -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }


def async_client(target: Target) -> AsyncRedis:
    """An asyncio client (hiredis parser when installed) with one quick reconnect."""
    if target.kind == "sentinel":
        return sentinel_async_client(target)
    if target.kind == "cluster":  # redis+cluster://: see cluster_client.py
        from conveyor.backends.redis.cluster_client import async_cluster_client

        # Duck-typed: the cluster client takes every command the backend sends.
        return cast(AsyncRedis, async_cluster_client(target, **_options()))
    return AsyncRedis.from_url(
        target.redis_url,
        retry=AsyncRetry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        **_options(),
    )


def sync_client(target: Target) -> Redis:
    """A thread-safe sync client, for `enqueue_sync` and `get_sync`."""
    if target.kind == "sentinel":
        return sentinel_sync_client(target)
    if target.kind == "cluster":
        from conveyor.backends.redis.cluster_client import sync_cluster_client

        return cast(Redis, sync_cluster_client(target, **_options()))
    return Redis.from_url(
        target.redis_url,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        **_options(),
    )


# -- Sentinel and TLS ----------------------------------------------------------------------
def _server_kwargs(target: Target) -> dict[str, Any]:
    """redis-py's keyword arguments for the data servers of a multi-host URL: user,
    password, database and options, without a host (Sentinel names it)."""
    from redis.connection import parse_url as redis_parse_url

    kwargs: dict[str, Any] = redis_parse_url(target.redis_url)  # type: ignore[no-untyped-call]
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    # rediss+sentinel://: the TLS connection class is chosen in `_sentinel_connections`.
    kwargs.pop("connection_class", None)
    return {**_options(), **kwargs}


def _sentinel_kwargs(target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": CONNECT_TIMEOUT,
    }
    if target.sentinel_password:
        out["password"] = target.sentinel_password
    if target.sentinel_username:
        out["username"] = target.sentinel_username
    if target.ssl_options:  # rediss+sentinel://: the sentinels speak TLS too
        from redis.connection import parse_url as redis_parse_url

        query = urlencode(target.ssl_options)
        parsed = redis_parse_url(f"rediss://sentinel/0?{query}")  # type: ignore[no-untyped-call]
        out.update({k: v for k, v in parsed.items() if k.startswith("ssl_")}, ssl=True)
    elif target.tls:
        out["ssl"] = True
    return out


@functools.cache
def _sentinel_connections(tls: bool = False) -> tuple[type[Any], type[Any]]:
    """Connection classes (async, sync) that ask the sentinels again on every reconnect
    (over TLS with ``tls``).

    redis-py (8.2) reconnects a dropped connection inside ``send_packed_command``, to the
    address it had, bypassing the Sentinel-aware ``connect``: after a failover that demotes
    the old primary (it closes its clients) the retry reached the old primary again and
    met READONLY. These send through ``connect`` first, which asks the sentinels.
    """
    from redis import sentinel as sync_sentinel
    from redis.asyncio import sentinel as async_sentinel

    async_base: type[Any] = (
        async_sentinel.SentinelManagedSSLConnection
        if tls
        else async_sentinel.SentinelManagedConnection
    )
    sync_base: type[Any] = (
        sync_sentinel.SentinelManagedSSLConnection
        if tls
        else sync_sentinel.SentinelManagedConnection
    )

    class AsyncConnection(async_base):  # type: ignore[misc]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self.is_connected:
                await self.connect()
            await super().send_packed_command(command, check_health)

    class SyncConnection(sync_base):  # type: ignore[misc]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self._sock:
                self.connect()
            super().send_packed_command(command, check_health)

    return AsyncConnection, SyncConnection


class _AsyncSentinelRedis(AsyncRedis):
    """The primary's client; closing it also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        await super().aclose(close_connection_pool)
        for sentinel in getattr(manager, "sentinels", ()):
            with contextlib.suppress(Exception):
                await sentinel.aclose()


class _SentinelRedis(Redis):
    """`_AsyncSentinelRedis` for the sync client."""

    def close(self) -> None:
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        super().close()
        for sentinel in getattr(manager, "sentinels", ()):
            with contextlib.suppress(Exception):
                sentinel.close()


def sentinel_async_client(target: Target) -> AsyncRedis:
    """An asyncio client of the primary the sentinels name for ``target.service``.

    It asks the sentinels again whenever it opens a connection, and drops its connections
    when the server it talks to turns out demoted (READONLY): after a failover the next
    call, or the caller's retry, reaches the new primary.
    """
    from redis.asyncio.sentinel import Sentinel

    manager = Sentinel(
        list(target.hosts), sentinel_kwargs=_sentinel_kwargs(target), **_server_kwargs(target)
    )
    return manager.master_for(  # type: ignore[no-any-return]
        target.service,
        redis_class=_AsyncSentinelRedis,
        connection_class=_sentinel_connections(target.tls)[0],
        retry=AsyncRetry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


def sentinel_sync_client(target: Target) -> Redis:
    """`sentinel_async_client` for the sync client."""
    from redis.sentinel import Sentinel

    manager = Sentinel(
        list(target.hosts), sentinel_kwargs=_sentinel_kwargs(target), **_server_kwargs(target)
    )
    return manager.master_for(  # type: ignore[no-any-return]
        target.service,
        redis_class=_SentinelRedis,
        connection_class=_sentinel_connections(target.tls)[1],
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
