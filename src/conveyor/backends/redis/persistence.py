"""The persistence check at open: the server settings that can lose or evict jobs, in words.

`RedisConnection.open` warns once per server per process; `conveyor status` shows the same
lines (`RedisAdmin.diagnostics`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis

    from conveyor.backends.redis.keys import Target

log = logging.getLogger("conveyor.backend.redis")

_warned: set[str] = set()
_warned_lock = threading.Lock()


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
