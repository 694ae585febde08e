"""Fixtures and helpers for the PostgreSQL integration tests (a real server, never a fake).

The server is the one the test command started (``CONVEYOR_TEST_POSTGRES_URL``): tests skip
locally without it and fail under CI. Each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from tests.contract.support import server_url

from conveyor.backends.postgres import PostgresBackend
from conveyor.job import NewJob, Priority


def new_schema() -> str:
    """A schema name no other test (or earlier run) uses."""
    return f"it_{os.urandom(6).hex()}"


def with_options(base: str, **options: str) -> str:
    """``base`` with query options added."""
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{base}{'&' if '?' in base else '?'}{query}" if query else base


@pytest.fixture
def pg_base() -> str:
    """The test server's URL, without a schema."""
    return server_url("postgres")


@pytest.fixture
def schema(pg_base: str) -> Iterator[str]:
    """A fresh schema name, dropped (with everything in it) after the test."""
    name = new_schema()
    yield name
    with psycopg.connect(pg_base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_url(pg_base: str, schema: str) -> str:
    """A URL for this test's own schema."""
    return with_options(pg_base, schema=schema)


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresBackend]:
    """An opened backend on the system clock (the server's time), closed after the test."""
    backend = PostgresBackend(pg_url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def job(**fields: Any) -> NewJob:
    """A small job; fields override the defaults."""
    fields.setdefault("task", "t")
    fields.setdefault("queue", "q")
    fields.setdefault("priority", Priority.NORMAL)
    fields.setdefault("payload", b"[[],{}]")
    fields.setdefault("max_retries", 0)
    fields.setdefault("timeout", 5.0)
    return NewJob(**fields)


def count_jobs(base: str, schema: str, where: str = "true") -> int:
    """Rows in a schema's jobs table, read on a connection of its own."""
    with psycopg.connect(base, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".jobs WHERE {where}').fetchone()
    assert row is not None
    return int(row[0])
