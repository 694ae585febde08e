"""Creating and upgrading Conveyor's schema: forward-only steps, and the version check.

``open()`` creates a schema that does not exist yet (handy in development and tests), but it
never upgrades an existing one: a store at an older version raises `SchemaVersionError`
telling the operator to run ``conveyor migrate``, so a rolling deploy cannot change the
tables under workers of the previous release without someone deciding to.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from conveyor.backends.postgres import sql
from conveyor.backends.postgres.connection import Target
from conveyor.backends.sqlfiles import migration_steps, newer_schema
from conveyor.errors import SchemaVersionError

log = logging.getLogger("conveyor.postgres")

_STEPS = migration_steps(sql.load("migrations.sql"), "migrations.sql")
#: The schema version this code writes: the number of migration steps.
SCHEMA_VERSION = len(_STEPS)


async def read_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int | None:
    """The version recorded in ``schema``; ``None`` when Conveyor has no tables there."""
    q = sql.queries(schema)
    cur = await conn.execute(q["meta_exists"], {"schema": schema})
    row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    cur = await conn.execute(q["schema_version"])
    row = await cur.fetchone()
    return 0 if row is None else int(row[0])


def _newer(version: int, target: Target) -> SchemaVersionError:
    return newer_schema(f"PostgreSQL at {target.where}", version, SCHEMA_VERSION)


def _older(version: int, target: Target) -> SchemaVersionError:
    return SchemaVersionError(
        f"PostgreSQL at {target.where} has Conveyor schema version {version}, but this "
        f"version of Conveyor needs {SCHEMA_VERSION}. Run `conveyor migrate` (with the same "
        "CONVEYOR_URL) to upgrade it, then start the workers again"
    )


async def _run_block(conn: psycopg.AsyncConnection[Any], text: str) -> None:
    # No parameters: psycopg sends the block as one simple query, several statements at once.
    await conn.execute(text.encode())


async def ensure(conn: psycopg.AsyncConnection[Any], target: Target, *, migrate: bool) -> str:
    """Check the schema; create it when absent, upgrade it when ``migrate``; say what was done.

    Raises `SchemaVersionError` for a newer store, or an older one when not ``migrate``.
    """
    schema = target.schema
    version = await read_version(conn, schema)
    if version == SCHEMA_VERSION:
        return f"schema {schema} is up to date (version {SCHEMA_VERSION})"
    if version is not None and version > SCHEMA_VERSION:
        raise _newer(version, target)
    if version is not None and not migrate:
        raise _older(version, target)
    schema_q = sql.queries(schema, "schema.sql")
    steps_q = sql.queries(schema, "migrations.sql")
    q = sql.queries(schema)
    async with conn.transaction():
        await conn.execute(q["lock_schema"], {"schema": schema})
        version = await read_version(conn, schema)  # again: another process may have won
        if version is None:
            await _run_block(conn, schema_q["create"])
            await conn.execute(q["set_schema_version"], {"version": str(SCHEMA_VERSION)})
            log.info("created Conveyor schema %s at version %d", schema, SCHEMA_VERSION)
            return f"created schema {schema} at version {SCHEMA_VERSION}"
        if version > SCHEMA_VERSION:
            raise _newer(version, target)
        if version == SCHEMA_VERSION:
            return f"schema {schema} is up to date (version {SCHEMA_VERSION})"
        for number, name in _STEPS[version:]:
            await _run_block(conn, steps_q[name])
            await conn.execute(q["set_schema_version"], {"version": str(number)})
            log.info("migrated Conveyor schema %s to version %d", schema, number)
    return f"migrated schema {schema} from version {version} to {SCHEMA_VERSION}"


async def apply_steps(conn: psycopg.AsyncConnection[Any], schema: str, upto: int) -> None:
    """Apply migration steps 1..``upto`` to an empty schema (tests build old stores with it)."""
    steps_q = sql.queries(schema, "migrations.sql")
    q = sql.queries(schema)
    async with conn.transaction():
        for number, name in _STEPS[:upto]:
            await _run_block(conn, steps_q[name])
            await conn.execute(q["set_schema_version"], {"version": str(number)})
