"""Rate windows and concurrency slots on PostgreSQL (queries and locking in `limits.sql`)."""

from __future__ import annotations

from typing import Any

from conveyor.backends.postgres.part import PostgresPart
from conveyor.backends.postgres.rows import Row


class PostgresLimits(PostgresPart):
    """Mixed into `PostgresBackend`: ``rate_acquire``, ``slot_acquire``, ``slot_release``."""

    async def _limit_rows(self, name: str, params: dict[str, Any]) -> list[Row]:
        return await self._file_rows("limits.sql", name, params)

    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """Take one start from the sliding window ``key``; ``0.0`` or the seconds to wait."""
        rows = await self._limit_rows(
            "rate_acquire", {"now": self._now(), "key": key, "limit": limit, "period": period}
        )
        # No row: a limit below one never grants; a whole period is an honest wait.
        return float(rows[0]["wait"]) if rows else max(period, 1e-6)

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Take or renew ``holder``'s slot of ``key``; ``False`` when all are held by others."""
        rows = await self._limit_rows(
            "slot_acquire",
            {
                "now": self._now(),
                "key": key,
                "holder": holder,
                "limit": limit,
                "ttl": ttl,
            },
        )
        return bool(rows and rows[0]["held"])

    async def slot_release(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot of ``key``, if it holds one."""
        await self._limit_rows("slot_release", {"key": key, "holder": holder})
