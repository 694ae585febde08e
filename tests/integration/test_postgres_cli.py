"""The real CLI on PostgreSQL: `conveyor migrate`, a worker refusing an older schema, and
`conveyor status` reporting a transaction that holds back vacuum."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from conveyor.backends.postgres import migrations

from .postgres_support import pg_base, pg_url, schema, with_options

__all__ = ["pg_base", "pg_url", "schema"]  # fixtures, imported for pytest

APP = """
from conveyor import Conveyor

app = Conveyor()


@app.task(name="noop")
def noop() -> None: ...
"""


def cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pgapp.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "WORKER_"))}
    env.update(CONVEYOR_URL=url, PYTHONPATH=str(tmp_path), WORKER_SLEEP="0.1")
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


async def _old_schema(base: str, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        await migrations.apply_steps(conn, name, 1)


def test_a_worker_stops_on_an_older_schema_until_migrated(
    tmp_path: Path, pg_base: str, pg_url: str, schema: str
) -> None:
    # Given a store an older Conveyor left at schema version 1
    asyncio.run(_old_schema(pg_base, schema))

    # When a worker starts on it, it stops at once with a message saying what to do
    begin = time.monotonic()
    worker = cli(tmp_path, pg_url, "worker", "--app", "pgapp:app", "--burst")
    assert worker.returncode == 2, worker.stderr
    assert "schema version 1" in worker.stderr and "Run `conveyor migrate`" in worker.stderr
    assert time.monotonic() - begin < 30

    # When the operator migrates (twice: it is idempotent)
    first = cli(tmp_path, pg_url, "migrate")
    assert first.returncode == 0, first.stderr
    assert f"from version 1 to {migrations.SCHEMA_VERSION}" in first.stdout
    again = cli(tmp_path, pg_url, "migrate", "--json")
    version = migrations.SCHEMA_VERSION
    assert json.loads(again.stdout)["result"].endswith(f"up to date (version {version})")

    # Then the worker runs
    worker = cli(tmp_path, pg_url, "worker", "--app", "pgapp:app", "--burst")
    assert worker.returncode == 0, worker.stderr


def test_status_reports_a_long_open_transaction(tmp_path: Path, pg_base: str, pg_url: str) -> None:
    url = with_options(pg_url, long_transaction="0.5")
    assert cli(tmp_path, url, "migrate").returncode == 0
    with psycopg.connect(pg_base) as holder:
        # Given another session holding a transaction open
        holder.execute("SELECT txid_current()")
        time.sleep(1.0)

        # Then status (JSON and text) says so, naming the session
        status = cli(tmp_path, url, "status", "--json")
        assert status.returncode == 0, status.stderr
        lines = json.loads(status.stdout)["diagnostics"]
        assert any(f"pid {holder.info.backend_pid}" in line for line in lines), lines
        text = cli(tmp_path, url, "status")
        assert "warning:" in text.stdout and "VACUUM" in text.stdout
        holder.rollback()

    quiet = cli(tmp_path, url, "status", "--json")
    assert json.loads(quiet.stdout)["diagnostics"] == []


def test_migrate_on_sqlite_just_opens_the_file(tmp_path: Path) -> None:
    result = cli(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", "migrate")
    assert result.returncode == 0, result.stderr
    assert "nothing to migrate" in result.stdout
    assert (tmp_path / "x.db").exists()
