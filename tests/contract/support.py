"""Where Conveyor's own stores are for the contract suite, and the test servers behind them.

The suite itself is `conveyor.testing.contract`; other tiers import `server_url`,
`plugged_url`, `BACKEND_URLS` and `new_job` from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.backends import stores
from conveyor.testing.contract.jobs import new_job

__all__ = ["BACKEND_URLS", "CONTRACT_STORES", "SERVER_ENV", "new_job", "plugged_url", "server_url"]

#: Environment variables naming the real servers the test command started.
SERVER_ENV = {"redis": "CONVEYOR_TEST_REDIS_URL", "postgres": "CONVEYOR_TEST_POSTGRES_URL"}


def server_url(name: str) -> str:
    """The base URL of a real test server; skips locally when unset, fails under CI."""
    url = os.environ.get(SERVER_ENV[name])
    if url:
        return url
    message = f"no {name} server: {SERVER_ENV[name]} is not set (scripts/test.sh sets it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def plugged_url(scheme: str) -> str:
    """``scheme://`` when a store for it is installed by entry point (the example store from
    tests/plugin_store); skips locally when it is not, fails under CI."""
    store = stores().get(scheme)
    if store is not None and not store.builtin:
        return f"{scheme}://"
    message = (
        f"no {scheme}:// store is installed: pip install -e tests/plugin_store "
        "(scripts/test.sh installs it)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


#: Backend name → URL of a fresh, empty store in a test's temporary directory.
BACKEND_URLS: dict[str, Callable[[Path], str]] = {
    "memory": lambda tmp: "memory://",
    "sqlite": lambda tmp: f"sqlite:///{tmp / 'contract.db'}",
    "postgres": lambda tmp: f"{server_url('postgres')}?schema=t_{os.urandom(6).hex()}",
    "redis": lambda tmp: f"{server_url('redis')}?prefix=test-{os.urandom(8).hex()}",
    "example": lambda tmp: plugged_url("example"),  # a third-party store, plugged in
}

#: The stores tests/contract runs the suite on. The plugged-in example store runs it from
#: its own distribution's tests (tests/plugin_store/test_contract.py), as a third party's
#: store would, so each contract test runs once per store.
CONTRACT_STORES = sorted(name for name in BACKEND_URLS if name != "example")
