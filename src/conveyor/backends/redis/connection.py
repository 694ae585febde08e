"""Clients, timeouts, error translation and the persistence check at open.

Timeouts are short on purpose: an enqueue while Redis is down must fail within seconds
with `BackendUnavailable`, never hang. A dead pooled connection (Redis restarted) is
retried once on a fresh connection; anything longer is the caller's back-off (the worker
already retries claims and acknowledgements).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    RedisError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)
from redis.retry import Retry

from conveyor.backends.redis.keys import Target
from conveyor.errors import BackendError, BackendUnavailable

log = logging.getLogger("conveyor.backend.redis")

#: Seconds to open a TCP (or TLS) connection, and to wait for any reply.
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 5.0

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _options() -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }


def async_client(target: Target) -> AsyncRedis:
    """An asyncio client (hiredis parser when installed) with one quick reconnect."""
    return AsyncRedis.from_url(
        target.redis_url,
        retry=AsyncRetry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        **_options(),
    )


def sync_client(target: Target) -> Redis:
    """A thread-safe sync client, for `enqueue_sync` and `get_sync`."""
    return Redis.from_url(
        target.redis_url,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        **_options(),
    )


@contextlib.contextmanager
def translated(target: Target) -> Iterator[None]:
    """Turn redis-py errors into Conveyor's, naming the server and what to do."""
    try:
        yield
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
            "running and reachable, or point CONVEYOR_URL (or REDIS_URL) at it."
        ) from exc
    except ResponseError as exc:
        hint = ""
        if str(exc).startswith("OOM"):
            hint = " Redis is out of memory: raise maxmemory or purge finished jobs."
        raise BackendError(f"Redis at {target.display} rejected a command: {exc}.{hint}") from exc
    except RedisError as exc:
        raise BackendError(f"Redis at {target.display} failed: {exc}") from exc


async def check_persistence(client: AsyncRedis, target: Target) -> None:
    """Warn (once per server per process) when a setting can lose or evict jobs."""
    with _warned_lock:
        if target.redis_url in _warned:
            return
        _warned.add(target.redis_url)
    for line in await persistence_problems(client):
        log.warning("Redis at %s: %s", target.display, line)


async def persistence_problems(client: AsyncRedis) -> list[str]:
    """The server's settings that can lose jobs, in words; none when CONFIG is forbidden."""
    try:
        config: dict[Any, Any] = dict(await client.config_get("appendonly"))
        config.update(await client.config_get("maxmemory-policy"))
    except ResponseError:
        return []  # managed Redis often forbids CONFIG: nothing to check
    # redis-py decodes CONFIG GET replies itself; normalise in case a version does not.
    return persistence_warnings({_text(k): _text(v) for k, v in config.items()})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def persistence_warnings(config: dict[str, str]) -> list[str]:
    """What the server's settings can lose, in words, one line per problem."""
    out = []
    if config.get("appendonly", "yes") != "yes":
        out.append(
            "appendonly is 'no': a Redis crash or restart loses every job enqueued, "
            "finished or retried since the last RDB snapshot (minutes). Set "
            "'appendonly yes' with 'appendfsync everysec' (at most about 1 s lost on a "
            "power cut)."
        )
    policy = config.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        out.append(
            f"maxmemory-policy is {policy!r}: when memory runs out Redis evicts "
            "keys, silently deleting queued jobs and indexes. Set 'maxmemory-policy "
            "noeviction' (enqueues then fail with an error instead)."
        )
    return out
