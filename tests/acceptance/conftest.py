"""Fixtures for the acceptance tier: a `Cluster` per test, torn down even on failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.contract.support import SERVER_ENV, server_url

from .harness import Cluster

#: Stores the acceptance tests run on: SQLite always, Redis and PostgreSQL when the test
#: command started them.
STORES = ["sqlite"] + [s for s in ("redis", "postgres") if os.environ.get(SERVER_ENV[s])]


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The URL of a fresh store (``None``: the cluster's own SQLite file)."""
    if request.param == "sqlite":
        return None
    if request.param == "postgres":
        return f"{server_url('postgres')}?schema=acceptance_{os.urandom(6).hex()}"
    return f"{server_url('redis')}?prefix=acceptance-{os.urandom(8).hex()}"


@pytest.fixture
def cluster(tmp_path: Path, store_url: str | None) -> Iterator[Cluster]:
    """One store and one ledger in ``tmp_path``; every worker started is killed after."""
    c = Cluster(tmp_path, store_url)
    try:
        yield c
    finally:
        c.close()
