"""Every read a person makes keeps working around a damaged record, on every real store.

One job's record is damaged by writing straight into SQLite, Redis or PostgreSQL. Then a
real worker drains the store (the damaged job is quarantined, the others succeed), and the
CLI's read commands and every dashboard page are used as an operator would: none fails, and
the damaged job is shown as unreadable.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import Result
from redis import Redis
from tests.contract.support import server_url
from typer.testing import CliRunner

from conveyor import Conveyor, State, Worker
from conveyor.backends.postgres import PostgresBackend
from conveyor.backends.redis import RedisBackend
from conveyor.backends.unreadable import UNREADABLE
from conveyor.cli import app as cli_app
from conveyor.dashboard import create_dashboard

Damage = Callable[[Conveyor, str], None]


def damage_sqlite(app: Conveyor, job_id: str) -> None:
    path = app.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE conveyor_jobs SET headers = '{not json' WHERE id = ?", (job_id,))


def damage_redis(app: Conveyor, job_id: str) -> None:
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    with Redis.from_url(server_url("redis")) as raw:
        raw.hset(backend.keys.job(job_id), "headers", "{not json")


def damage_postgres(app: Conveyor, job_id: str) -> None:
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    schema = backend.target.schema.replace('"', '""')
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(
            f"UPDATE \"{schema}\".jobs SET headers = '[1, 2]'::jsonb WHERE id = %s".encode(),
            (job_id,),
        )


STORES: dict[str, tuple[Callable[[Path], str], Damage]] = {
    "sqlite": (lambda tmp: f"sqlite:///{tmp / 'damaged.db'}", damage_sqlite),
    "redis": (
        lambda tmp: f"{server_url('redis')}?prefix=reads-{os.urandom(6).hex()}",
        damage_redis,
    ),
    "postgres": (
        lambda tmp: f"{server_url('postgres')}?schema=reads_{os.urandom(6).hex()}",
        damage_postgres,
    ),
}


@pytest.mark.parametrize("store", sorted(STORES))
async def test_reads_work_around_a_damaged_record(store: str, tmp_path: Path) -> None:
    url_for, damage = STORES[store]
    url = url_for(tmp_path)
    app = Conveyor(url)

    @app.task(name="work", retries=0)
    async def work(n: int) -> int:
        return n

    # Given three jobs, one of them damaged in the store itself
    await app.open()
    handles = [await work.enqueue_async(n) for n in range(3)]
    bad = handles[1].id
    damage(app, bad)

    # When a real worker drains the store
    worker = Worker(app, burst=True, concurrency=2, reaper=False)
    assert await worker.run() == 0

    # Then the healthy jobs succeeded and the damaged one is quarantined, its record kept
    for handle in (handles[0], handles[2]):
        assert (await handle.info_async()).state is State.SUCCEEDED
    shown = await app.backend.get(bad)
    assert shown is not None and shown.unreadable is not None and shown.raw
    await app.aclose()

    # and every CLI read works and marks it (each command runs its own event loop),
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli_app, [*args, "--url", url])

    for command in (
        ["status"],
        ["workers"],
        ["jobs", "list"],
        ["failed", "list"],
        ["jobs", "show", bad],
    ):
        result = await asyncio.to_thread(invoke, *command)
        assert result.exit_code == 0, (command, result.output)
    listed = json.loads((await asyncio.to_thread(invoke, "jobs", "list", "--json")).stdout)
    marks = {row["id"]: row["unreadable"] for row in listed}
    assert marks[bad] is not None and marks[handles[0].id] is None
    dead = json.loads((await asyncio.to_thread(invoke, "failed", "list", "--json")).stdout)
    assert [row["id"] for row in dead] == [bad]
    assert dead[0]["last_error"].startswith(UNREADABLE)

    # and so does every dashboard page and its API.
    viewer = Conveyor(url)
    dashboard = create_dashboard(viewer)
    transport = httpx.ASGITransport(app=dashboard)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as web:
            for path in (
                "/",
                "/workers",
                "/jobs",
                "/jobs?state=dead",
                "/failed",
                "/scheduled",
                f"/jobs/{bad}",
                "/api/overview",
                "/api/history",
                "/api/workers",
                "/api/jobs",
                f"/api/jobs/{bad}",
                "/api/schedules",
            ):
                page = await web.get(path)
                assert page.status_code == 200, (path, page.text[:300])
            detail = (await web.get(f"/api/jobs/{bad}")).json()
            assert detail["unreadable"]
    finally:
        await dashboard.state.dashboard.close()
        await viewer.aclose()
