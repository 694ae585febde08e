"""The contract suite's fixtures: every test runs once per backend, on one fake clock.

To check another backend, add one entry to `support.BACKEND_URLS`: a function from the test's
temporary directory to the URL of an empty store. Tests only ever use the Backend protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.backends import create_backend
from conveyor.backends.base import Backend
from conveyor.clock import FakeClock

from .support import BACKEND_URLS


@pytest.fixture
def clock() -> FakeClock:
    """The one clock the backend under test reads; tests move it with `advance`."""
    return FakeClock()


@pytest.fixture(params=sorted(BACKEND_URLS))
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each kind in turn."""
    return BACKEND_URLS[request.param](tmp_path)


@pytest.fixture
async def backend(backend_url: str, clock: FakeClock) -> AsyncIterator[Backend]:
    """An opened backend on `clock`, closed after the test."""
    b = create_backend(backend_url, clock=clock)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def other(backend: Backend) -> AsyncIterator[Backend]:
    """A second, separately opened handle on the same store (another process's view)."""
    b = backend.clone()
    await b.open()
    try:
        yield b
    finally:
        await b.close()
