"""Rate windows and concurrency slots on PostgreSQL (queries and locking in `limits.sql`)."""

from __future__ import annotations

from typing import Any

from conveyor.backends.capabilities import Limits
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.rows import Row


class PostgresLimits(Limits):
    """`Limits` as row-locked windows and slots, on the store's clock."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _rows(self, name: str, params: dict[str, Any]) -> list[Row]:
        return await self.db.file_rows("limits.sql", name, params)

    async def rate_acquire(self, key: str, limit: int, period: float) -> float:
        """Take one start from the sliding window ``key``; ``0.0`` or the seconds to wait."""
        rows = await self._rows(
            "rate_acquire", {"now": self.db.now(), "key": key, "limit": limit, "period": period}
        )
        # No row: a limit below one never grants; a whole period is an honest wait.
        return float(rows[0]["wait"]) if rows else max(period, 1e-6)

    async def slot_acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Take or renew ``holder``'s slot of ``key``; ``False`` when all are held by others."""
        rows = await self._rows(
            "slot_acquire",
            {
                "now": self.db.now(),
                "key": key,
                "holder": holder,
                "limit": limit,
                "ttl": ttl,
            },
        )
        return bool(rows and rows[0]["held"])

    async def slot_release(self, key: str, holder: str) -> None:
        """Free ``holder``'s slot of ``key``, if it holds one."""
        await self._rows("slot_release", {"key": key, "holder": holder})
