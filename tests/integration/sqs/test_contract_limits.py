"""The contract suite's `Limits` tests on an SQS store whose limits live in a second store
(``?limits=``): the rate windows and slots the worker relies on, on the suite's clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.testing.contract import TestLimits, backend, clock, other

__all__ = ["TestLimits", "backend", "clock", "other"]


@pytest.fixture
def store_url(new_sqs_url: Callable[..., str], tmp_path: Path) -> str:
    """A new SQS store whose rate limits and slots are kept in a new SQLite file."""
    return new_sqs_url(limits=f"sqlite:///{tmp_path / 'limits.db'}")
