"""Transactional enqueue: store jobs through the caller's own connection and transaction.

The job rows (and the NOTIFY that wakes workers) become visible only if the caller's
transaction commits; a rollback leaves no trace. Accepted connections:

* a psycopg 3 ``Connection`` or ``AsyncConnection``;
* an SQLAlchemy ``Session`` or ``Connection`` on the ``postgresql+psycopg://`` driver, and
  their asyncio versions (``AsyncSession``, ``AsyncConnection``) for ``enqueue_async``.

The statement runs on the caller's connection as-is: Conveyor never commits, rolls back or
changes its settings. On a connection in autocommit mode the job is committed at once.
`PostgresTransactions` is the store's `Transactions` capability.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from conveyor.backends.capabilities import Transactions
from conveyor.backends.postgres.connection import translate
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.rows import enqueue_async, enqueue_sync
from conveyor.errors import ConfigError
from conveyor.job import EnqueueResult, NewJob

_KINDS = (
    "a psycopg Connection or AsyncConnection, or an SQLAlchemy Session or Connection "
    "(sync or asyncio) on the postgresql+psycopg:// driver"
)


def _is_sqlalchemy(obj: object) -> bool:
    return type(obj).__module__.startswith("sqlalchemy.")


def _unsupported(obj: object, hint: str = "") -> ConfigError:
    return ConfigError(
        f"cannot enqueue inside a transaction of {type(obj).__module__}."
        f"{type(obj).__qualname__}: connection= takes {_KINDS}{hint}"
    )


def _from_dbapi(raw: object, owner: object) -> Any:
    if isinstance(raw, (psycopg.Connection, psycopg.AsyncConnection)):
        return raw
    driver = type(raw).__module__.split(".")[0]
    raise _unsupported(
        owner,
        f"; this engine uses the {driver} driver: create it with a postgresql+psycopg:// URL",
    )


def sync_connection(obj: object) -> psycopg.Connection[Any]:
    """The psycopg connection behind ``obj``, for a sync enqueue."""
    if isinstance(obj, psycopg.Connection):
        return obj
    if isinstance(obj, psycopg.AsyncConnection):
        raise ConfigError(
            "connection= is a psycopg AsyncConnection: enqueue with enqueue_async() (or "
            "enqueue_many_async) so the statement runs on its event loop"
        )
    if _is_sqlalchemy(obj):
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session

        if isinstance(obj, Session):
            # Joins (or begins) the session's transaction, as the session's own queries do.
            obj = obj.connection()
        if isinstance(obj, Connection):
            if not obj.in_transaction():
                # What SQLAlchemy's autobegin does on execute: without it, its commit()
                # would not know a transaction is open and would not commit ours.
                obj.begin()
            conn = _from_dbapi(obj.connection.dbapi_connection, obj)
            if isinstance(conn, psycopg.Connection):
                return conn
    raise _unsupported(obj)


async def async_connection(obj: object) -> psycopg.AsyncConnection[Any]:
    """The psycopg async connection behind ``obj``, for an async enqueue."""
    if isinstance(obj, psycopg.AsyncConnection):
        return obj
    if isinstance(obj, psycopg.Connection):
        raise ConfigError(
            "connection= is a sync psycopg Connection: enqueue with enqueue() (or "
            "enqueue_many), or pass an AsyncConnection"
        )
    if _is_sqlalchemy(obj):
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        if isinstance(obj, AsyncSession):
            obj = await obj.connection()
        if isinstance(obj, AsyncConnection):
            if not obj.in_transaction():
                await obj.begin()  # see sync_connection
            raw = await obj.get_raw_connection()
            conn = _from_dbapi(raw.driver_connection, obj)
            if isinstance(conn, psycopg.AsyncConnection):
                return conn
        else:
            raise ConfigError(
                f"connection= is a sync SQLAlchemy {type(obj).__name__}: enqueue with "
                "enqueue() (or enqueue_many), or pass an AsyncSession / AsyncConnection"
            )
    raise _unsupported(obj)


class PostgresTransactions(Transactions):
    """`Transactions` on PostgreSQL: the enqueue statement run on the caller's connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue_in(self, connection: object, jobs: Sequence[NewJob]) -> list[EnqueueResult]:
        """Store jobs inside the caller's open transaction."""
        conn = sync_connection(connection)
        if not jobs:
            return []
        try:
            return enqueue_sync(conn, self.db.q, self.db.plan(jobs))
        except psycopg.Error as exc:
            raise translate(exc, self.db.target) from exc

    async def enqueue_in_async(
        self, connection: object, jobs: Sequence[NewJob]
    ) -> list[EnqueueResult]:
        """`enqueue_in` on an async connection or session."""
        conn = await async_connection(connection)
        if not jobs:
            return []
        try:
            return await enqueue_async(conn, self.db.q, self.db.plan(jobs))
        except psycopg.Error as exc:
            raise translate(exc, self.db.target) from exc
