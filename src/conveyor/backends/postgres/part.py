"""What the pieces of `PostgresBackend` (its mixins) use from the backend itself."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from conveyor.backends.postgres import sql
from conveyor.backends.postgres.connection import Target
from conveyor.backends.postgres.pools import AsyncConn
from conveyor.backends.postgres.rows import Row


class PostgresPart:
    """Base of `PostgresBackend`'s mixins: the attributes and calls the backend provides."""

    target: Target
    #: The NOTIFY channel, or ``None`` when listening is off.
    _channel: str | None

    def _now(self) -> float | None:
        raise NotImplementedError  # provided by PostgresBackend

    def _conn(self) -> AbstractAsyncContextManager[AsyncConn]:
        raise NotImplementedError  # provided by PostgresBackend

    async def _rows(self, name: str, params: dict[str, Any], text: str | None = None) -> list[Row]:
        raise NotImplementedError  # provided by PostgresBackend

    async def _file_rows(self, file: str, name: str, params: dict[str, Any]) -> list[Row]:
        """Run the statement ``name`` of the query file ``file`` (e.g. ``limits.sql``)."""
        return await self._rows(name, params, sql.queries(self.target.schema, file)[name])
