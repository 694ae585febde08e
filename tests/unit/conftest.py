"""Unit-tier fixtures: a memory-backed app on a fake clock, isolated from the environment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.clock import FakeClock
from conveyor.settings import Settings
from conveyor.testing import make_test_app


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ``WORKER_*`` variable or ``.env`` file of the developer's leaks into a test."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)  # an alias of CONVEYOR_URL
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock `app` and its backend read."""
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> Conveyor:
    """A fresh memory-backed app on `clock`."""
    return make_test_app(clock=clock)


def wait_until(predicate: Callable[[], object], timeout: float = 2.0) -> None:
    """Block until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.002)


async def until(predicate: Callable[[], object], timeout: float = 2.0) -> None:
    """`wait_until` for async tests: yields to the loop between checks."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.002)
