"""The suite's fixtures, and how a test says which capabilities it needs.

The store under test comes from one fixture the store's own tests define, ``store_url``:
the URL of a new, empty store (each test gets its own). Every test then runs on one
`FakeClock` (``clock``) that the store must read for its "now", through an opened handle
(``backend``) and, where a test needs another process's view, a second handle on the same
store (``other``).

The model check (`TestModel`) also needs many new stores in one test: it uses a
``new_store_url`` fixture, a function giving the URL of another new, empty store at each
call, when the store's tests define one, and is skipped otherwise.

A test class (or a single test) marked ``@requires(Admin)`` runs only on stores that have
that capability; on others ``backend`` skips it, naming the capability it lacks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest
import pytest_asyncio

from conveyor.backends import create_backend
from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Capability
from conveyor.clock import FakeClock

T = TypeVar("T")

_REQUIRES = "__contract_requires__"


def requires(*capabilities: type[Capability]) -> Callable[[T], T]:
    """Mark a test class or test as needing ``capabilities`` (`Limits`, `Admin`, ...)."""

    def mark(target: T) -> T:
        setattr(target, _REQUIRES, (*getattr(target, _REQUIRES, ()), *capabilities))
        return target

    return mark


def required(request: pytest.FixtureRequest) -> tuple[type[Capability], ...]:
    """The capabilities the requesting test needs: its class's and its own."""
    on_class = getattr(request.cls, _REQUIRES, ()) if request.cls is not None else ()
    on_test = getattr(request.function, _REQUIRES, ())
    return (*on_class, *on_test)


def skip_unless_supported(store: Backend, capabilities: tuple[type[Capability], ...]) -> None:
    """Skip the test, naming the first capability in ``capabilities`` the store lacks."""
    for capability in capabilities:
        if not store.supports(capability):
            scheme = store.url.partition("://")[0] or store.url
            pytest.skip(
                f"needs the {capability.name} capability ({capability.__name__}), which the "
                f"{scheme}:// store does not have"
            )


@pytest.fixture
def clock() -> FakeClock:
    """The one clock the store under test reads; tests move it with `advance`."""
    return FakeClock()


@pytest_asyncio.fixture
async def backend(
    request: pytest.FixtureRequest, store_url: str, clock: FakeClock
) -> AsyncIterator[Backend]:
    """An opened handle on the store at ``store_url``, on ``clock``, closed after the test.

    Skips the test when the store lacks a capability the test is marked as needing.
    """
    store = create_backend(store_url, clock=clock)
    skip_unless_supported(store, required(request))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest_asyncio.fixture
async def other(backend: Backend) -> AsyncIterator[Backend]:
    """A second, separately opened handle on the same store (another process's view)."""
    handle = backend.clone()
    await handle.open()
    try:
        yield handle
    finally:
        await handle.close()
