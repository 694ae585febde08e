"""Fixtures for the acceptance tier: a `Cluster` per test, torn down even on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """One SQLite file and one ledger in ``tmp_path``; every worker started is killed after."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
