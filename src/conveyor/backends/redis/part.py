"""What the pieces of `RedisBackend` (its mixins) use from the backend itself."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis as AsyncRedis

from conveyor.backends.redis.keys import Keys, Target


class RedisPart:
    """Base of `RedisBackend`'s mixins: the attributes and calls `RedisBackend` provides."""

    keys: Keys
    target: Target

    def _client(self) -> AsyncRedis:
        raise NotImplementedError  # provided by RedisBackend

    async def _run(self, name: str, keys: list[str], *args: Any) -> Any:
        raise NotImplementedError  # provided by RedisBackend
