"""`PostgresProgress`: a running job's latest progress report, kept on its row (`progress.sql`)."""

from __future__ import annotations

from conveyor.backends.capabilities import Progress
from conveyor.backends.postgres.database import Database
from conveyor.job import Lease


class PostgresProgress(Progress):
    """`Progress` on PostgreSQL: one guarded UPDATE per report, on the store's clock."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def report_progress(
        self, lease: Lease, done: float, total: float | None, note: str | None
    ) -> bool:
        """Keep the report on the job this lease holds; ``False`` (nothing changed) otherwise."""
        rows = await self.db.file_rows(
            "progress.sql",
            "report_progress",
            {
                "now": self.db.now(),
                "id": lease.job_id,
                "token": lease.token,
                "done": done,
                "total": total,
                "note": note,
            },
        )
        return bool(rows)
