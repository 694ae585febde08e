"""The memory backend (``memory://``): the reference implementation of the store protocol.

Everything lives in one process, in one `MemoryState` guarded by one lock, so it is
thread-safe and its behaviour is easy to read. It is what the other stores are checked
against (the contract suite's model test), what unit tests and the eager testing mode run
on, and the executable specification a store author reads beside `conveyor.backends.base`.

It is built the way every store is: the core verbs on `MemoryBackend` (`backend`), and one
part per capability, each holding the same state: `MemoryLimits` (`limits`),
`MemoryScheduling` (`scheduling`), `MemoryAdmin` (`admin`) and `MemoryTelemetry`
(`telemetry`). `state` has the state itself and the copies made on the way in and out.
`clone()` gives another handle on the same state.
"""

from __future__ import annotations

from conveyor.backends.memory.admin import MemoryAdmin
from conveyor.backends.memory.backend import MemoryBackend, Parts
from conveyor.backends.memory.limits import MemoryLimits
from conveyor.backends.memory.scheduling import MemoryScheduling
from conveyor.backends.memory.state import MemoryPart, MemoryState
from conveyor.backends.memory.telemetry import MemoryTelemetry

__all__ = [
    "MemoryAdmin",
    "MemoryBackend",
    "MemoryLimits",
    "MemoryPart",
    "MemoryScheduling",
    "MemoryState",
    "MemoryTelemetry",
    "Parts",
]
