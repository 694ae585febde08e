"""Fixtures for the chaos tier: one private redis-server and one private PostgreSQL for the
whole package (each on its own port and directory, never the shared test servers), and the
storms' figures in the terminal summary.

Tests may stop, kill, freeze or restart these servers: the function-scoped `redis` and `pg`
fixtures hand each test a running one, and only what these fixtures started is stopped. Each
``*_cluster`` fixture is a `Cluster` on a fresh store (SQLite file, Redis key prefix or
PostgreSQL schema) whose worker processes are killed when the test ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster
from tests.integration.redis_server import RedisServer

from .support import REPORTS, PgServer


@pytest.fixture(scope="package")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server (appendonly yes, fsync every second) for the chaos tests."""
    with RedisServer(tmp_path_factory.mktemp("chaos-redis")).running() as server:
        yield server


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    """The package's redis-server, running (an earlier test may have left it stopped)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.proc = None
        redis_server.start()
    return redis_server


@pytest.fixture(scope="package")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL cluster for the chaos tests, in a directory the postgres user can reach
    (pytest's temporary directories are private to this user)."""
    server = PgServer(Path(f"/tmp/conveyor-chaos-pg-{os.getpid()}-{os.urandom(3).hex()}"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def pg(pg_server: PgServer) -> PgServer:
    """The package's PostgreSQL, running (`start` is a no-op when it already runs)."""
    pg_server.start()
    return pg_server


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster on a SQLite file of its own; every process it starts is killed after."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def redis_cluster(tmp_path: Path, redis: RedisServer) -> Iterator[Cluster]:
    """A cluster on a key prefix of its own on the package's redis-server."""
    c = Cluster(tmp_path, f"{redis.url}?prefix=chaos-{os.urandom(4).hex()}")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def pg_cluster(tmp_path: Path, pg: PgServer) -> Iterator[Cluster]:
    """A cluster on a schema of its own on the package's PostgreSQL."""
    c = Cluster(tmp_path, f"{pg.url}?schema=chaos_{os.urandom(4).hex()}")
    try:
        yield c
    finally:
        c.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what each storm measured, whatever the capture mode."""
    if REPORTS:
        terminalreporter.section("chaos figures")
        for line in REPORTS:
            terminalreporter.write_line(line)
