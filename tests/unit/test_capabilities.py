"""A store's capabilities: what it offers, and the one line it gives for what it lacks."""

from __future__ import annotations

import pytest
from tests.unit.partial_stores import partial_store

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin, Limits, Scheduling, Telemetry, Unsupported
from conveyor.backends.memory import MemoryBackend
from conveyor.errors import ConfigError


def test_the_memory_store_has_every_capability_but_transactions() -> None:
    store = MemoryBackend()
    assert store.capabilities == {"limits", "scheduling", "admin", "telemetry", "progress"}
    assert isinstance(store.admin, Admin) and isinstance(store.limits, Limits)


def test_a_missing_capability_is_one_line_naming_the_store_and_what_it_lacks() -> None:
    store = partial_store("limits", url="mystore://")
    assert store.supports(Limits) and not store.supports(Telemetry)
    with pytest.raises(Unsupported) as raised:
        _ = store.telemetry
    message = str(raised.value)
    assert isinstance(raised.value, ConfigError)
    assert "\n" not in message
    assert message.startswith("the mystore:// store does not keep job history")


def test_require_names_what_needs_the_capability() -> None:
    store = partial_store(url="mystore://")
    with pytest.raises(Unsupported, match=r"cron ticks .*; the scheduler needs a store"):
        store.require(Scheduling, purpose="the scheduler")
    partial_store("admin").require(Admin)  # has it: nothing raised


def test_a_store_that_never_calls_init_is_core_only() -> None:
    # Given a store author's class that sets itself up without Backend.__init__
    class Bare(MemoryBackend):
        def __init__(self) -> None:
            self.url = "bare://"

    store: Backend = Bare()
    # Then it offers no capability, and says so rather than failing on a missing attribute
    assert store.capabilities == frozenset()
    with pytest.raises(Unsupported, match="the bare:// store cannot list"):
        _ = store.admin
