"""The contract suite (`conveyor.testing.contract`) on each of Conveyor's stores.

The stores come from conftest.py (`store_url`, `new_store_url`); tests a store lacks the
capability for are skipped with the capability's name.
"""

from conveyor.testing.contract import *  # noqa: F403 - the suite's tests and fixtures
