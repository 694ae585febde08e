"""The progress capability on Redis: a running job's latest report, kept by ``progress.lua``
in its hash's ``progress`` field, with the job's attempt and the store's clock."""

from __future__ import annotations

from conveyor.backends.capabilities import Progress
from conveyor.backends.redis import codec
from conveyor.backends.redis.connection import RedisConnection
from conveyor.job import Lease


class RedisProgress(Progress):
    """`Progress` on one handle's connection: one short script per report."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn

    async def report_progress(
        self, lease: Lease, done: float, total: float | None, note: str | None
    ) -> bool:
        """Keep the report on the leased job (one HSET); ``False``, with nothing changed,
        when the lease is not current."""
        kept = await self._conn.run(
            "progress",
            [self._conn.keys.job(lease.job_id)],
            lease.token,
            codec.progress_members(done, total, note),
        )
        return bool(kept == 1)
