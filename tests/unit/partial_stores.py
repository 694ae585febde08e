"""Stores that offer only some capabilities, for testing what callers do without the rest.

Each is the memory store with fewer parts (`MemoryBackend.compose`), so its clones (the
dashboard's handle, the metrics refresher's) offer the same subset. ``example://`` (the
plug-in store in ``tests/plugin_store``) is the core-and-`Limits` one a user would meet.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.memory import MemoryBackend, MemoryState, Parts
from conveyor.clock import Clock


def store_class(*keep: str) -> type[MemoryBackend]:
    """A memory store class offering only the capabilities named in ``keep``."""

    class PartialStore(MemoryBackend):
        @classmethod
        def compose(cls, state: MemoryState, clock: Clock) -> Parts:
            parts = MemoryBackend.compose(state, clock)
            kept: Any = {name: part for name, part in parts.items() if name in keep}
            return Parts(**kept)

    PartialStore.__name__ = f"PartialStore[{','.join(keep) or 'core'}]"
    return PartialStore


def partial_store(*keep: str, url: str = "partial://") -> Backend:
    """A fresh memory store under ``url`` offering only the capabilities in ``keep``."""
    return store_class(*keep)(url)


def patch_apps(monkeypatch: pytest.MonkeyPatch, *keep: str) -> Backend:
    """Make every app created from now on use a store offering only ``keep``; all of them
    share one state, which the returned handle reads and seeds.

    For the CLI, which makes its app (and its store) from ``--url`` inside the command.
    """
    import conveyor.app

    cls = store_class(*keep)
    state = MemoryState()
    monkeypatch.setattr(
        conveyor.app, "create_backend", lambda url, clock: cls(url, clock=clock, state=state)
    )
    return cls("partial://", state=state)
