"""Conveyor's own stores under the contract suite: each test runs once per store.

The suite is `conveyor.testing.contract` (test_contract.py imports it); here are the two
fixtures it asks a store's tests for. To add a store, add an entry to
`support.BACKEND_URLS`: a function from a temporary directory to the URL of an empty store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .support import BACKEND_URLS, CONTRACT_STORES


@pytest.fixture(params=CONTRACT_STORES)
def store_name(request: pytest.FixtureRequest) -> str:
    """Each store's name in turn."""
    name: str = request.param
    return name


@pytest.fixture
def store_url(store_name: str, tmp_path: Path) -> str:
    """The URL of a new, empty store of that kind."""
    return BACKEND_URLS[store_name](tmp_path)


@pytest.fixture
def new_store_url(store_name: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """Gives the URL of another new, empty store of that kind at each call (the model check)."""
    return lambda: BACKEND_URLS[store_name](tmp_path_factory.mktemp(store_name))
