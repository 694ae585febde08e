"""The contract suite: the executable spec every Conveyor store runs, importable.

A store's own test suite runs it by importing the test classes and fixtures into one test
module and saying where a new, empty store is::

    # tests/test_contract.py of your store's distribution
    import pytest

    from conveyor.testing.contract import *  # noqa: F403 - the suite's tests and fixtures


    @pytest.fixture
    def store_url(tmp_path) -> str:
        return f"mystore:///{tmp_path / 'jobs'}"   # a new, empty store for each test


    @pytest.fixture
    def new_store_url(tmp_path_factory):             # optional: runs the model check
        return lambda: f"mystore:///{tmp_path_factory.mktemp('model') / 'jobs'}"

The store must be installed (its scheme registered in the ``conveyor.backends`` entry-point
group) and must read the clock it is given: the tests pass a `FakeClock` and move it to
expire leases, make retries due and age rate windows. The core tests run on every store;
each class of tests that needs a capability says so (``@requires(Limits)``) and is skipped,
naming the capability, on a store without it. Needs pytest, pytest-asyncio and Hypothesis;
async tests are marked for pytest-asyncio, so they run in its strict mode as well as auto.
"""

from __future__ import annotations

from conveyor.testing.contract.claim import TestClaim
from conveyor.testing.contract.enqueue import TestEnqueue
from conveyor.testing.contract.fixtures import backend, clock, other, requires
from conveyor.testing.contract.isolation import TestIsolation
from conveyor.testing.contract.leases import TestCounters, TestLeases
from conveyor.testing.contract.limits import TestDefer, TestLimits
from conveyor.testing.contract.model import TestModel
from conveyor.testing.contract.operations import TestHistory, TestOperations
from conveyor.testing.contract.repair import TestRepair
from conveyor.testing.contract.scheduling import TestScheduling
from conveyor.testing.contract.story import TestAttemptLog, TestProgress
from conveyor.testing.contract.transitions import TestAdminTransitions, TestTransitions
from conveyor.testing.contract.wait import TestClaimWait
from conveyor.testing.contract.workers import TestWorkers

__all__ = [
    "TestAdminTransitions",
    "TestAttemptLog",
    "TestClaim",
    "TestClaimWait",
    "TestCounters",
    "TestDefer",
    "TestEnqueue",
    "TestHistory",
    "TestIsolation",
    "TestLeases",
    "TestLimits",
    "TestModel",
    "TestOperations",
    "TestProgress",
    "TestRepair",
    "TestScheduling",
    "TestTransitions",
    "TestWorkers",
    "backend",
    "clock",
    "other",
    "requires",
]
