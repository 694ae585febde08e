"""A running job's latest progress report on SQLite: the Progress capability.

The query lives in `progress.sql`; the column comes from schema step ``migrate_5``. A
report is one guarded UPDATE (group-committed with its neighbours), stamped with the
store's now and the attempts of the job that holds the lease.
"""

from __future__ import annotations

from conveyor.attempts import progress_json
from conveyor.backends.capabilities import Progress
from conveyor.backends.sqlite import sql
from conveyor.backends.sqlite.runner import Runner
from conveyor.backends.sqlite.store import Store
from conveyor.job import Lease


def report_progress(
    store: Store, lease: Lease, done: float, total: float | None, note: str | None
) -> bool:
    """Keep this report on the job held by ``lease``; False (nothing changed) otherwise."""

    def txn() -> bool:
        # The attempt is filled in from the row by the UPDATE itself.
        report = progress_json(done, total, note, 0, store.clock.now())
        params = {"report": report, "id": lease.job_id, "token": lease.token}
        cursor = store.conn.execute(sql.load("progress.sql")["report_progress"], params)
        return cursor.rowcount > 0

    return store.write(txn)


class SqliteProgress(Progress):
    """The Progress capability of one `SqliteBackend` handle, on that handle's `Runner`."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def report_progress(
        self, lease: Lease, done: float, total: float | None, note: str | None
    ) -> bool:
        """Keep the latest report of the job held by ``lease`` (see `Progress`)."""
        return await self._runner.grouped(lambda s: report_progress(s, lease, done, total, note))
