"""The example store runs Conveyor's contract suite from its own distribution.

This is all a third party's store needs: the suite's tests and fixtures, imported, and where
a new, empty store is. Tests for capabilities the store does not have are skipped, each
naming the capability it lacks.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.testing.contract import *  # noqa: F403 - the suite's tests and fixtures


@pytest.fixture
def store_url() -> str:
    """Each example:// store is new and empty: it lives in the handle that opened it."""
    return "example://"


@pytest.fixture
def new_store_url() -> Callable[[], str]:
    """Another new, empty store at each call, for the model check."""
    return lambda: "example://"
